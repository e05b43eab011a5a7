package sdk

// The plugin side's converters, for the round-trip tests in sdk_test.
var (
	DescriptionToProto     = descriptionToProto
	DeliveryToProto        = deliveryToProto
	EventToProto           = eventToProto
	SessionConfigFromProto = sessionConfigFromProto
	InputFromProto         = inputFromProto
	CloseModeFromProto     = closeModeFromProto
	ToStatus               = toStatus
	WatchParent            = watchParent
)
