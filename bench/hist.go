package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// histSubBits sets the precision of a Hist: each power-of-two range is cut
// into 2^histSubBits linear buckets, so a recorded value is known to within
// 1/128 (< 0.8 %) of itself.
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits
	// histMaxExp bounds the values a Hist can hold: 2^(histMaxExp+8) ns is
	// about 78 hours; larger values are clamped into the last bucket.
	histMaxExp  = 40
	histBuckets = (histMaxExp + 2) * histSubCount
)

// Hist is a log-linear histogram of non-negative int64 values (wsbench
// records nanoseconds), in the spirit of HdrHistogram: values below 128 are
// exact, and above that every power of two is split into 128 equal buckets.
// It is mergeable across goroutines and processes (Merge, and JSON that
// round-trips losslessly) and never allocates on Record. Not safe for
// concurrent use: give each goroutine its own and Merge them.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

// NewHist returns an empty histogram.
func NewHist() *Hist { return &Hist{min: math.MaxInt64} }

func histIndex(v int64) int {
	if v < histSubCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - histSubBits - 1
	if exp > histMaxExp {
		return histBuckets - 1
	}
	return exp*histSubCount + int(uint64(v)>>uint(exp))
}

// histBounds returns the lowest and highest value that land in bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < histSubCount {
		return int64(i), int64(i)
	}
	exp := i/histSubCount - 1
	mant := int64(i%histSubCount + histSubCount)
	return mant << uint(exp), (mant+1)<<uint(exp) - 1
}

// Record adds one value (negative values count as 0).
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count is the number of recorded values.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest recorded value (0 when empty).
func (h *Hist) Max() int64 {
	if h.n == 0 {
		return 0
	}
	return h.max
}

// Min is the smallest recorded value (0 when empty).
func (h *Hist) Min() int64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Mean is the exact mean of the recorded values (0 when empty).
func (h *Hist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Merge adds every value of o to h. o is not modified.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
}

// Reset empties the histogram.
func (h *Hist) Reset() { *h = Hist{min: math.MaxInt64} }

// Quantile returns the value at quantile q (0..1): the highest value
// equivalent to the bucket holding the ceil(q·n)-th smallest value, clamped
// to the observed min and max, so it overstates by less than 0.8 %.
// Quantile(1) is the exact max.
func (h *Hist) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := histBounds(i)
			if hi > h.max {
				hi = h.max
			}
			if hi < h.min {
				hi = h.min
			}
			return hi
		}
	}
	return h.max
}

// Bucket is one non-empty bucket: values in [Lo, Hi], Count of them.
type Bucket struct {
	Lo, Hi int64
	Count  uint64
}

// Buckets returns the non-empty buckets in increasing order.
func (h *Hist) Buckets() []Bucket {
	var out []Bucket
	for i, c := range h.counts {
		if c != 0 {
			lo, hi := histBounds(i)
			out = append(out, Bucket{lo, hi, c})
		}
	}
	return out
}

// histJSON is the serialised form: sparse [index, count] pairs plus the exact
// summary fields, so that decode(encode(h)) == h.
type histJSON struct {
	SubBits int         `json:"sub_bits"`
	Count   uint64      `json:"count"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Sum     float64     `json:"sum"`
	Buckets [][2]uint64 `json:"buckets"`
}

// MarshalJSON implements json.Marshaler.
func (h *Hist) MarshalJSON() ([]byte, error) {
	j := histJSON{SubBits: histSubBits, Count: h.n, Min: h.Min(), Max: h.Max(), Sum: h.sum, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.SubBits != histSubBits {
		return fmt.Errorf("histogram: sub_bits %d, want %d", j.SubBits, histSubBits)
	}
	h.Reset()
	var n uint64
	for _, b := range j.Buckets {
		if b[0] >= histBuckets {
			return errors.New("histogram: bucket index out of range")
		}
		h.counts[b[0]] += b[1]
		n += b[1]
	}
	if n != j.Count {
		return fmt.Errorf("histogram: buckets hold %d values, count says %d", n, j.Count)
	}
	h.n, h.sum = j.Count, j.Sum
	if n > 0 {
		h.min, h.max = j.Min, j.Max
	}
	return nil
}
