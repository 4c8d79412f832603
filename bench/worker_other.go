//go:build !linux

package bench

import (
	"context"
	"errors"
	"syscall"
)

// errUnsupported: the client loops are built on epoll.
var errUnsupported = errors.New("wsbench's clients need Linux (epoll)")

type worker struct{}

func newWorker(Config) (*worker, error) { return nil, errUnsupported }

func (*worker) snapshot() Counters { return Counters{} }

func (*worker) drive(context.Context, <-chan string, func()) (*workerResult, error) {
	return nil, errUnsupported
}

func sendSignal(int, syscall.Signal) error { return errUnsupported }
