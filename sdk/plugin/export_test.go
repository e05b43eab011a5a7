package plugin

// Internals for the tests in plugin_test.
var (
	ToStatus    = toStatus
	WatchParent = watchParent
)
