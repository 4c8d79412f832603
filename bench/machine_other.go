//go:build !linux

package bench

import "runtime"

// DescribeMachine reports what the runtime knows off Linux.
func DescribeMachine() Machine {
	return Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
}
