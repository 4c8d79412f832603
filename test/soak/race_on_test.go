//go:build race

package soak

// raceBuild: the test binary, and so the wsd it builds, has the race
// detector; the workloads shrink to what an instrumented driver sustains.
const raceBuild = true
