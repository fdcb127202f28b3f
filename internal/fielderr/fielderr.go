// Package fielderr is the one error type of kiln's pure decision packages
// (deploy/health, autoscale, upgrade, repair): a problem at a field path,
// which the fleet loader prefixes with the set's path and places at the
// field's file:line:col.
package fielderr

// Error is one problem at a field path such as "gracePeriod" or
// "rules[1].timeWindow".
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }
