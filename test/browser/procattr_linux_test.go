package browser

import "syscall"

// daemonSysProcAttr makes the kernel kill wsd if the test binary dies
// without stopping it (a go test -timeout panic skips the cleanups).
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
