//go:build linux || darwin || freebsd

package poller

import "golang.org/x/sys/unix"

// RaiseFileLimit lifts RLIMIT_NOFILE's soft limit to its hard limit and
// returns the resulting soft limit: every connection is a descriptor.
func RaiseFileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &r)
			return r.Cur, err
		}
	}
	return r.Cur, nil
}
