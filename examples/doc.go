// Package examples holds kiln's example recipes (one per built-in role and a
// multi-role one) and tests that keep them valid: every example loads, and
// every cloud-config it renders is accepted by cloud-init itself.
package examples
