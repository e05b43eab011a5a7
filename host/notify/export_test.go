package notify

// SetTestHook makes n call f with "silent" when a health PING went
// unanswered (before it replaces the connection), "down" when a PING
// found no server after a loss, and "resync" after a reconnect's watches
// fired: tests wait for these instead of sleeping.
func SetTestHook(n *Notifier, f func(event string)) {
	n.mu.Lock()
	n.hook = f
	n.mu.Unlock()
}
