// Package soak holds wsd's long-running tests against the daemon as a
// separate process: a churn soak (connects, disconnects, echo, broadcast
// and abusive clients for $SOAK, then goroutines, fds and RSS must come
// back) and slow consumers at scale. Everything is in _test.go files; see
// docs/bench/soak.md and docs/bench/slow-consumers.md.
package soak
