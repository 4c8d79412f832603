//go:build !linux

package browser

import "syscall"

func daemonSysProcAttr() *syscall.SysProcAttr { return nil }
