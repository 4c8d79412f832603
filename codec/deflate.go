package codec

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692). github.com/klauspost/compress/flate is used
// instead of compress/flate because it measured ≈2.5× faster to compress and
// ≈1.3× faster to decompress a 1 KiB JSON message, with a smaller writer
// (≈0.8 MiB against ≈1.2 MiB at level 1).
//
// Without context takeover (the default) no connection owns any flate state:
// writers and readers are borrowed from pools inside Flate for the duration
// of one call, so their number follows the number of messages being
// (de)compressed at once, not the number of connections.

const (
	defaultDeflateLevel     = 1
	defaultDeflateThreshold = 128

	// flateWindowSize is the LZ77 window Go's flate compresses and
	// inflates with (server_max_window_bits / client_max_window_bits 15).
	flateWindowSize = 1 << 15
	// minWindowBits and maxWindowBits bound *_max_window_bits (RFC 7692
	// §7.1.2).
	minWindowBits, maxWindowBits = 8, 15

	// flushTail is what RFC 7692 §7.2.1 strips from every compressed
	// message: the end of an empty stored block (a sync flush).
	flushTail = "\x00\x00\xff\xff"
	// inflateTail is appended before inflating (§7.2.2): the flush tail,
	// then an empty final stored block, so the reader ends with a clean
	// io.EOF instead of an unexpected one.
	inflateTail = flushTail + "\x01\x00\x00\xff\xff"

	// inflateCopyMax is the largest payload copied into a reader's scratch
	// buffer to use klauspost's fast *bytes.Reader path (≈20% faster than
	// the generic io.ByteReader path); bigger payloads are streamed so a
	// pooled reader never keeps more than this much scratch memory.
	inflateCopyMax = 64 << 10
)

// DeflateConfig configures permessage-deflate. The zero value disables it.
// It is a plain value, safe to copy and to read from several goroutines.
type DeflateConfig struct {
	// Enabled turns on negotiation of permessage-deflate.
	Enabled bool
	// ContextTakeover false (the default) answers every offer with
	// server_no_context_takeover and client_no_context_takeover, which
	// RFC 7692 §7.1.1 lets a server demand even when not offered, so no
	// connection holds flate state between messages.
	//
	// true keeps LZ77 history across messages, as the client offered:
	// better ratios on streams of similar messages, at a cost per
	// connection of ≈0.8 MiB (TestContextTakeoverMemory measures it):
	// the compressor, a klauspost flate.Writer of ≈780 KiB once used at
	// level 1 (0.3–0.9 MiB at other levels; ≈1.2 MiB with compress/flate),
	// plus a 32 KiB window of inflate history. Each is taken on the
	// connection's first compressed message in its direction and held
	// until FlateContext.Release; the decompressor itself (≈37 KiB) stays
	// pooled and is primed from the window per message. 10,000 chatty
	// connections therefore hold ≈8 GiB: keep it for few, long-lived,
	// high-volume connections.
	ContextTakeover bool
	// Level is the flate compression level: 1 (fastest) to 9, -1 for
	// flate's default, -2 for Huffman-only. 0, and any value flate does
	// not accept, mean 1: on a server CPU per message matters more than
	// the last few percent of ratio. A connection whose client asked for a
	// server window below 32 KiB (server_max_window_bits < 15) is
	// compressed by klauspost's window-limited writer, which has one
	// strategy of its own (close to level 5) whatever Level says.
	Level int
	// Threshold is the smallest message worth compressing (see
	// Flate.ShouldCompress); deflate framing and a Huffman table cost
	// more than they save on tiny messages. 0 means 128 bytes; a
	// negative value compresses every message.
	Threshold int
}

// DeflateParams are the permessage-deflate parameters of a connection, as
// sent in the handshake response. A window-bits field of 0 means the
// parameter was not sent (a 32 KiB window); otherwise it is 8–15 and the
// side it names compresses with back-references of at most 2^bits bytes.
// It is a plain value.
type DeflateParams struct {
	ServerNoContextTakeover, ClientNoContextTakeover bool
	ServerMaxWindowBits, ClientMaxWindowBits         int
}

// negotiateDeflate picks the first acceptable permessage-deflate offer in a
// Sec-WebSocket-Extensions value and returns the response parameters. An
// offer that is malformed (unknown, duplicate or invalid parameters) or that
// we cannot honour is skipped, never fatal: declining compression still
// leaves a working connection.
func negotiateDeflate(cfg DeflateConfig, header string) (DeflateParams, bool) {
	offers, ok := scanExtensions(header)
	if !ok {
		// A syntax error anywhere makes every offer suspect.
		return DeflateParams{}, false
	}
	for _, opt := range offers {
		if p, ok := acceptOffer(cfg, opt); ok {
			return p, true
		}
	}
	return DeflateParams{}, false
}

// scanExtensions splits a Sec-WebSocket-Extensions value into its options;
// false means a syntax error.
func scanExtensions(header string) ([]httphead.Option, bool) {
	// ScanOptions unescapes quoted strings in place, and header is
	// immutable: scan a copy.
	data := []byte(header)
	var (
		opts []httphead.Option
		cur  = -1
	)
	ok := httphead.ScanOptions(data, func(i int, name, attr, val []byte) httphead.Control {
		if i != cur {
			cur = i
			opts = append(opts, httphead.Option{Name: name})
		}
		if len(attr) > 0 {
			opts[len(opts)-1].Parameters.Set(attr, val)
		}
		return httphead.ControlContinue
	})
	return opts, ok
}

// parseDeflateOption parses a permessage-deflate offer or response; false
// for another extension or invalid parameters.
func parseDeflateOption(opt httphead.Option) (wsflate.Parameters, bool) {
	var p wsflate.Parameters
	if !strings.EqualFold(string(opt.Name), wsflate.ExtensionName) || p.Parse(opt) != nil {
		return p, false
	}
	// Parse lets a valueless client_max_window_bits repeat, and reads
	// "09" as 9; RFC 7692 §7 says a duplicate parameter invalidates the
	// option, and window bits have no leading zeroes (§7.1.2).
	n, ok := 0, true
	opt.Parameters.ForEach(func(k, v []byte) bool {
		if string(k) == "client_max_window_bits" {
			n++
		}
		if len(v) > 1 && v[0] == '0' {
			ok = false
		}
		return true
	})
	return p, ok && n <= 1
}

func acceptOffer(cfg DeflateConfig, opt httphead.Option) (DeflateParams, bool) {
	offer, ok := parseDeflateOption(opt)
	if !ok {
		return DeflateParams{}, false
	}
	// klauspost's flate compresses within any window from 2^8 up, so every
	// server_max_window_bits the RFC allows (8–15, §7.1.2.1) is honoured
	// exactly and echoed: the client sized its inflate window for it.
	// (zlib cannot compress with a 256-byte window and silently uses 512
	// instead, which is why some servers answer 8 with 9; we need not: a
	// window of 8 is the strictest promise and every inflater reads it.)
	//
	// client_max_window_bits, valued or not, only says the client could
	// honour a limit on its own window. We inflate with 32 KiB windows,
	// which read streams made with any window, so we accept the offer and
	// never answer with a limit.
	var p DeflateParams
	if offer.ServerMaxWindowBits.Defined() {
		p.ServerMaxWindowBits = int(offer.ServerMaxWindowBits)
	}
	if cfg.ContextTakeover {
		p.ServerNoContextTakeover = offer.ServerNoContextTakeover
		p.ClientNoContextTakeover = offer.ClientNoContextTakeover
	} else {
		p.ServerNoContextTakeover = true
		p.ClientNoContextTakeover = true
	}
	return p, true
}

// appendDeflateParams appends the Sec-WebSocket-Extensions value for p.
func appendDeflateParams(dst []byte, p DeflateParams) []byte {
	dst = append(dst, wsflate.ExtensionName...)
	if p.ServerNoContextTakeover {
		dst = append(dst, "; server_no_context_takeover"...)
	}
	if p.ClientNoContextTakeover {
		dst = append(dst, "; client_no_context_takeover"...)
	}
	if 8 <= p.ServerMaxWindowBits && p.ServerMaxWindowBits <= 15 {
		dst = append(dst, "; server_max_window_bits="...)
		dst = strconv.AppendInt(dst, int64(p.ServerMaxWindowBits), 10)
	}
	if 8 <= p.ClientMaxWindowBits && p.ClientMaxWindowBits <= 15 {
		dst = append(dst, "; client_max_window_bits="...)
		dst = strconv.AppendInt(dst, int64(p.ClientMaxWindowBits), 10)
	}
	return dst
}

// Flate compresses and decompresses permessage-deflate messages for a whole
// server. It owns pools of flate writers and readers, so one Flate should
// be shared by every connection. Safe for concurrent use.
type Flate struct {
	level     int
	threshold int
	// writers[b-minWindowBits] holds *flateWriter compressing within a
	// 2^b window. Only the 2^15 one honours Level: klauspost's writers
	// for smaller windows have a single (level 5 like) strategy.
	writers [maxWindowBits - minWindowBits + 1]sync.Pool
	readers sync.Pool // *flateReader
	windows sync.Pool // *inflateWindow
}

// NewFlate returns a Flate for cfg (cfg.Enabled is not consulted: whether
// to compress is decided per connection by the handshake). Safe for
// concurrent use; it allocates no flate state until the first message.
func NewFlate(cfg DeflateConfig) *Flate {
	f := &Flate{level: cfg.Level, threshold: cfg.Threshold}
	// flate also reads levels below -2 as custom window sizes; those are
	// not levels, so they fall back to the default too.
	if f.level == 0 || f.level < flate.HuffmanOnly || f.level > flate.BestCompression {
		f.level = defaultDeflateLevel
	}
	switch {
	case f.threshold == 0:
		f.threshold = defaultDeflateThreshold
	case f.threshold < 0:
		f.threshold = 0
	}
	for i := range f.writers {
		bits := minWindowBits + i
		f.writers[i].New = func() any {
			w := &flateWriter{bits: bits}
			// The level was validated above and the window is one
			// flate accepts, so this cannot fail.
			if bits == maxWindowBits {
				w.fw, _ = flate.NewWriter(&w.out, f.level)
			} else {
				w.fw, _ = flate.NewWriterWindow(&w.out, 1<<bits)
			}
			return w
		}
	}
	f.readers.New = func() any {
		r := new(flateReader)
		r.fr = flate.NewReader(&r.src)
		return r
	}
	f.windows.New = func() any { return new(inflateWindow) }
	return f
}

// ShouldCompress reports whether a message of n bytes is worth compressing
// under the configured Threshold. A message sent uncompressed does not
// touch the flate state, so this is valid with context takeover too. Safe
// for concurrent use.
func (f *Flate) ShouldCompress(n int) bool {
	return n >= f.threshold
}

// appendWriter is an io.Writer appending to a slice, so that a flate writer
// compresses straight into the caller's buffer.
type appendWriter struct{ buf []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// flateWriter is a pooled compressor bound to its own appendWriter.
type flateWriter struct {
	fw   *flate.Writer
	out  appendWriter
	bits int // its window is 2^bits: the pool it belongs to
}

// getWriter takes a reset compressor for a 2^bits window (bits 0 means 15).
func (f *Flate) getWriter(bits int) *flateWriter {
	w := f.writers[windowIndex(bits)].Get().(*flateWriter)
	w.fw.Reset(&w.out)
	return w
}

func (f *Flate) putWriter(w *flateWriter) {
	w.out.buf = nil
	f.writers[w.bits-minWindowBits].Put(w)
}

// windowIndex maps window bits as negotiated (0 for absent) to a pool;
// negotiation only ever yields 0 or 8–15.
func windowIndex(bits int) int {
	if bits < minWindowBits || bits > maxWindowBits {
		bits = maxWindowBits
	}
	return bits - minWindowBits
}

// msgSource feeds a compressed message and then inflateTail without copying
// the payload. It implements io.ByteReader so flate does not wrap it in a
// bufio.Reader (an allocation per message).
type msgSource struct {
	p    []byte
	tail string
}

func (s *msgSource) Read(b []byte) (int, error) {
	if len(s.p) > 0 {
		n := copy(b, s.p)
		s.p = s.p[n:]
		return n, nil
	}
	if len(s.tail) > 0 {
		n := copy(b, s.tail)
		s.tail = s.tail[n:]
		return n, nil
	}
	return 0, io.EOF
}

func (s *msgSource) ReadByte() (byte, error) {
	if len(s.p) > 0 {
		c := s.p[0]
		s.p = s.p[1:]
		return c, nil
	}
	if len(s.tail) > 0 {
		c := s.tail[0]
		s.tail = s.tail[1:]
		return c, nil
	}
	return 0, io.EOF
}

// flateReader is a pooled decompressor with the sources it reads from.
type flateReader struct {
	fr      io.ReadCloser // also a flate.Resetter
	src     msgSource
	br      bytes.Reader
	scratch []byte
}

// inflateWindow is the last 32 KiB a peer's compressor saw: the whole state
// of an inflater between sync-flushed messages, since Huffman tables never
// span blocks.
type inflateWindow struct {
	buf [flateWindowSize]byte
	n   int
}

func (w *inflateWindow) add(p []byte) {
	if len(p) >= flateWindowSize {
		w.n = copy(w.buf[:], p[len(p)-flateWindowSize:])
		return
	}
	keep := min(w.n, flateWindowSize-len(p))
	copy(w.buf[:keep], w.buf[w.n-keep:w.n])
	w.n = keep + copy(w.buf[keep:], p)
}

// FlateContext is the per-connection state of a connection that cannot
// share the server-wide defaults: one that keeps context (takeover) in at
// least one direction, or whose client asked for a server window below
// 32 KiB. Other connections use nil. Its parts are taken lazily from the
// Flate on the first message in each direction, so an idle connection
// holds only this small struct. Not safe for concurrent use: Deflate calls
// on one context must be serialised, and so must Inflate calls (the two
// directions are independent).
//
// A non-nil context therefore does not imply takeover; what it does imply
// is that a message compressed for this connection must not be sent on
// another one (a broadcast compressed once has the default 32 KiB window).
type FlateContext struct {
	f        *Flate
	compress bool // server keeps context: w persists across messages
	inflate  bool // client keeps context: win persists across messages
	bits     int  // server_max_window_bits agreed, 0 for the default
	w        *flateWriter
	win      *inflateWindow
}

// NewContext returns the state for a connection with parameters p, or nil
// when neither direction keeps context and the server window is the
// default 32 KiB. Safe for concurrent use.
func (f *Flate) NewContext(p DeflateParams) *FlateContext {
	bits := p.ServerMaxWindowBits
	if bits == maxWindowBits {
		bits = 0
	}
	if p.ServerNoContextTakeover && p.ClientNoContextTakeover && bits == 0 {
		return nil
	}
	return &FlateContext{f: f, compress: !p.ServerNoContextTakeover, inflate: !p.ClientNoContextTakeover, bits: bits}
}

// Release returns the context's compressor and window to the Flate's pools;
// call it once when the connection closes. The context must not be used
// afterwards, nor concurrently with Release. A nil context is a no-op.
func (c *FlateContext) Release() {
	if c == nil {
		return
	}
	if c.w != nil {
		c.f.putWriter(c.w)
		c.w = nil
	}
	if c.win != nil {
		c.win.n = 0
		c.f.windows.Put(c.win)
		c.win = nil
	}
}

// Deflate appends the compressed form of msg to dst, without the trailing
// 00 00 ff ff (RFC 7692 §7.2.1). ctx is the connection's FlateContext (nil
// for the defaults: no takeover, 32 KiB window); with it, back-references
// stay within the agreed server window, across messages too with
// takeover. It allocates nothing in steady state beyond growing dst. Safe
// for concurrent use with distinct (or nil) contexts.
func (f *Flate) Deflate(dst, msg []byte, ctx *FlateContext) []byte {
	bits := 0
	if ctx != nil {
		bits = ctx.bits
		if ctx.compress {
			if ctx.w == nil {
				ctx.w = f.getWriter(bits)
			}
			return deflateTo(ctx.w, dst, msg)
		}
	}
	w := f.getWriter(bits)
	dst = deflateTo(w, dst, msg)
	f.putWriter(w)
	return dst
}

func deflateTo(w *flateWriter, dst, msg []byte) []byte {
	start := len(dst)
	w.out.buf = dst
	// appendWriter never fails, so neither can the flate writer.
	_, _ = w.fw.Write(msg)
	_ = w.fw.Flush()
	dst = w.out.buf
	w.out.buf = nil
	// A sync flush always ends with the empty stored block's 00 00 ff ff.
	if len(dst)-start >= len(flushTail) {
		dst = dst[:len(dst)-len(flushTail)]
	}
	return dst
}

// Inflate appends the decompressed message to dst. payload is the
// concatenated payload of all frames of one compressed message, without the
// 00 00 ff ff tail (it is supplied internally, RFC 7692 §7.2.2). Inflation
// stops as soon as the output would exceed max bytes (max <= 0 allows only
// an empty message) with ErrMessageTooBig, having produced at most max+1
// bytes, so a compression bomb costs what max allows and no more. Corrupt
// data gives ErrCorruptCompression. On error dst is returned with its
// original length. ctx is the connection's FlateContext (nil without
// context takeover). It allocates nothing in steady state beyond growing
// dst. Safe for concurrent use with distinct (or nil) contexts.
func (f *Flate) Inflate(dst, payload []byte, max int, ctx *FlateContext) ([]byte, error) {
	if len(payload) == 0 {
		// Not valid DEFLATE (an empty message compresses to 0x00), but it
		// can only mean an empty message: accept it, as most peers do.
		return dst, nil
	}
	r := f.readers.Get().(*flateReader)
	defer f.putReader(r)

	var dict []byte
	if ctx != nil && ctx.inflate && ctx.win != nil {
		dict = ctx.win.buf[:ctx.win.n]
	}
	var src flate.Reader
	if len(payload) <= inflateCopyMax {
		r.scratch = append(append(r.scratch[:0], payload...), inflateTail...)
		r.br.Reset(r.scratch)
		src = &r.br
	} else {
		r.src = msgSource{p: payload, tail: inflateTail}
		src = &r.src
	}
	// Reset cannot fail for klauspost's reader.
	_ = r.fr.(flate.Resetter).Reset(src, dict)

	start := len(dst)
	if max < 0 {
		max = 0
	}
	for {
		if len(dst) == cap(dst) {
			dst = growOutput(dst, start, len(payload), max)
		}
		room := dst[len(dst):cap(dst)]
		// Ask for at most one byte past the limit: enough to detect a
		// message that is too big without inflating any further.
		if left := max - (len(dst) - start) + 1; len(room) > left {
			room = room[:left]
		}
		n, err := r.fr.Read(room)
		dst = dst[:len(dst)+n]
		if len(dst)-start > max {
			return dst[:start], ErrMessageTooBig
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst[:start], ErrCorruptCompression
		}
	}
	if ctx != nil && ctx.inflate {
		if ctx.win == nil {
			ctx.win = f.windows.Get().(*inflateWindow)
		}
		ctx.win.add(dst[start:])
	}
	return dst, nil
}

func (f *Flate) putReader(r *flateReader) {
	// Drop references to the caller's memory before pooling.
	r.src = msgSource{}
	r.br.Reset(nil)
	if cap(r.scratch) > inflateCopyMax+len(inflateTail) {
		r.scratch = nil
	}
	f.readers.Put(r)
}

// growOutput makes room in dst for more inflated bytes: geometrically, so a
// large message costs O(log n) copies, but never beyond max+1 output bytes,
// so a bomb cannot make us allocate more than the limit allows.
func growOutput(dst []byte, start, payloadLen, limit int) []byte {
	produced := len(dst) - start
	want := max(produced, 4*payloadLen, 512)
	if left := limit - produced + 1; want > left {
		want = left
	}
	return slices.Grow(dst, want)
}
