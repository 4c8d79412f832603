package main

import (
	"errors"
	"flag"
	"math"
	"strconv"
	"strings"
)

// Byte sizes in flags and the config file: a plain number of bytes, or a
// number with a unit — binary KiB, MiB, GiB, TiB (powers of 1024) or
// decimal KB, MB, GB, TB (powers of 1000), B for bytes; units are not
// case-sensitive and may follow a space: "16MiB", "64 kib", "1GB".

var byteUnits = []struct {
	suffix string
	mult   int64
}{ // longest first: "kib" before "b"
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

var errByteSize = errors.New("want a number of bytes, e.g. 65536, 64KiB, 16MiB, 1GiB")

// parseByteSize reads a size; fractions are allowed with a unit
// ("1.5GiB"), the result is rounded down to a whole byte.
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64/mult {
			return 0, errByteSize
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || mult == 1 || !(f >= 0) || f*float64(mult) >= math.MaxInt64 {
		return 0, errByteSize
	}
	return int64(f * float64(mult)), nil
}

// formatByteSize writes n with the largest binary unit that divides it.
func formatByteSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// byteSizeValue is a flag.Value for a size held in an int or an int64.
type byteSizeValue[T int | int64] struct{ p *T }

func (v byteSizeValue[T]) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return errByteSize
	}
	*v.p = T(n)
	return nil
}

func (v byteSizeValue[T]) String() string {
	if v.p == nil {
		return "0"
	}
	return formatByteSize(int64(*v.p))
}

// bytesVar defines a byte-size flag.
func bytesVar[T int | int64](fs *flag.FlagSet, p *T, name string, def T, usage string) {
	*p = def
	fs.Var(byteSizeValue[T]{p}, name, usage)
}
