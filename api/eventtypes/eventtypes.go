// Package eventtypes lists the event types clusterd emits, for acli's
// filters and clusterd's validation of them.
package eventtypes

// Types are the event types, for filters (event.list, event.watch type=).
var Types = []string{"cluster", "cvm", "ha", "host", "iscsi", "migration", "network", "task", "vg", "vm"}
