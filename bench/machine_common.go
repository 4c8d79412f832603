package bench

// Machine describes the box a run was made on.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemBytes  uint64 `json:"mem_bytes"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	FileLimit uint64 `json:"file_limit"`
}

// MemGiB is the memory in GiB.
func (m Machine) MemGiB() float64 { return float64(m.MemBytes) / (1 << 30) }
