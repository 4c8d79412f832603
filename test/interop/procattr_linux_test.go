package interop

import "syscall"

// daemonSysProcAttr makes the kernel kill the daemon if the test binary dies
// without stopping it (a go test -timeout panic skips TestMain's teardown).
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
