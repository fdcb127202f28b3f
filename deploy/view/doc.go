// Package view is the live view of a fleet that kiln deploy serve serves:
// a small web page, and the same data as JSON.
//
// The controller (kiln deploy run) keeps the fleet's picture; view only
// shows it. It asks a Source for a Snapshot and serves it:
//
//	Source.Snapshot ──► Snapshot{Fleet, At, Sets[{Image, LoadBalancer, Upgrade, Autoscale,
//	      │                     Instances[{State, Health, HealthReason, FD, UD, Digest, ...}]}],
//	      │                     Events}
//	      ▼
//	Handler ──► GET /                  the page: index.html, view.js, view.css (embedded)
//	        ├─► GET /api/snapshot      the snapshot as JSON (camelCase, schemaVersion)
//	        ├─► GET /api/events        server-sent events: the snapshot at once, and again
//	        │                          at every change (the Source polled every second)
//	        └─► GET /api/graph.svg     Snapshot.Topology drawn as deploy draws it (DOT, then
//	                                   Graphviz's dot -Tsvg; bounded, cached by content)
//
// The page shows, per set, its image, load balancer, autoscale summary,
// the upgrade under way and a table of instances (state, health and why,
// fault and update domain, image digest, how to reach it); then the
// topology drawing and the event log, newest first. It follows
// /api/events, and polls /api/snapshot when it cannot.
//
// The page loads nothing from elsewhere (no CDN, no web font: it works
// offline) and runs no inline script: its Content-Security-Policy is
// default-src 'self'. Every value reaches the page as text, never as
// markup, so an instance name or a health reason cannot inject HTML.
// Nothing can be changed through the view: only GET (and HEAD) are
// answered, and only for IP addresses, localhost and the host names it is
// given (DNS rebinding). Where it listens is the caller's choice.
//
// view sits above deploy: it may import deploy, deploy/health and
// internal packages; deploy never imports it (depcheck_test.go).
package view
