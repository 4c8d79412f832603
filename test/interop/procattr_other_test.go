//go:build !linux

package interop

import "syscall"

func daemonSysProcAttr() *syscall.SysProcAttr { return nil }
