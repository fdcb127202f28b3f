// Package autoscale decides a scale set's capacity from its metrics (issue
// 15, item 6), with the documented semantics of cloud scale-set autoscale
// (Azure Monitor autoscale). It is only the decision: no metric is read,
// no instance made, no clock consulted. The caller passes the profile, the
// metric series it collected, the current capacity, the time and the time
// of the last scale action; Evaluate returns the capacity to have and why.
// The same inputs always give the same Decision, which is what makes
// `kiln deploy autoscale SET --dry-run` and the tests possible.
//
// # Metrics
//
// A Series is one metric of the set, sampled every Series.Interval: each
// Sample holds one value per instance ("cpu": the percentage of its vCPUs
// the instance used over the interval ending at Sample.At). A rule looks
// at the samples in its window (now-TimeWindow, now]:
//
//	per sample:  Statistic over the instances   (average, max or min)
//	per window:  the mean of those, over the samples   (Azure's time aggregation "Average")
//
// The window must be covered: a sample within one interval of its start,
// of each other and of now (the newest may be one interval old: the next
// may be on its way). A window with a hole (a metric endpoint down, a set
// that started collecting three minutes ago for a five-minute window) has
// no value, and its rule does not fire: a decision from part of a window
// is a decision from noise. The Decision says which window is not covered,
// and why.
//
// # Deciding
//
//	capacity outside [Minimum, Maximum]   → brought back inside, at once
//	no rule has a covered window          → Default, if capacity is below it (metrics lost: stay available)
//	any scale-out rule fires              → the largest capacity they ask for, at most Maximum
//	every scale-in rule fires             → the largest capacity they ask for (the smallest
//	                                        change), at least Minimum, unless flapping
//	otherwise                             → no change, each rule's observation as the reason
//
// Scale-out wins over scale-in. A rule may act only when its Cooldown has
// passed since the profile's last scale action, whichever rule took it:
// one cooldown clock per profile, so a scale-out is not undone by a
// scale-in before its instances carry load.
//
// Flapping: before scaling in from n to m, every scale-out rule with a
// covered window is checked against its value as it would be with the same
// total load on fewer instances, value × n / m. If one would fire, the
// set would scale out again at the next evaluation: it stays at n and the
// Decision says "flapping avoided". The estimate assumes the metric is a
// per-instance share of the load (CPU percentage, requests per instance).
//
// Simulate replays series at an evaluation interval, feeding each
// evaluation only the samples that existed then; the tests use it to hold
// the decision latency to at most one evaluation interval after a window
// crosses its threshold.
//
// The package imports only the standard library (depcheck_test.go); the
// capacity limit of a set is passed to Validate, not imported.
package autoscale
