package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "65536": 65536, "64KiB": 64 << 10, "16MiB": 16 << 20, "256MiB": 256 << 20,
		"1GiB": 1 << 30, "2 tib": 2 << 40, "64kb": 64000, "1.5GiB": 3 << 29, "10B": 10, " 8 MB ": 8e6,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "12XB", "MiB", "1.5", "9999999TiB", "nan GiB", "-2KiB", "1e400 KiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("%q: %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 16 << 20: "16MiB", 1 << 30: "1GiB", 3 << 10: "3KiB"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("format %d: %q, want %q", n, got, want)
		}
	}
}

// Sizes with units in flags and in the config file, as people type them.
func TestByteSizeFlagsAndConfig(t *testing.T) {
	c, err := parseConfig([]string{"--max-message", "256MiB", "--max-outbound", "8MiB",
		"--socket-send-buffer", "64KiB", "--socket-recv-buffer", "128KiB"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.maxMessage != 256<<20 || c.maxOutbound != 8<<20 || c.sockSendBuf != 64<<10 || c.sockRecvBuf != 128<<10 {
		t.Fatalf("max-message %d, max-outbound %d, socket buffers %d %d", c.maxMessage, c.maxOutbound, c.sockSendBuf, c.sockRecvBuf)
	}
	path := filepath.Join(t.TempDir(), "wsd.toml")
	if err := os.WriteFile(path, []byte("max_message = \"1GiB\"\nmax_data_bytes = 131072\nmax_outbound = \"64 KiB\"\nsocket_send_buffer = \"32KiB\"\nsocket_recv_buffer = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = parseConfig([]string{"--config", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.maxMessage != 1<<30 || c.maxDataBytes != 128<<10 || c.maxOutbound != 64<<10 || c.sockSendBuf != 32<<10 || c.sockRecvBuf != 0 {
		t.Fatalf("from the file: %d %d %d, socket buffers %d %d", c.maxMessage, c.maxDataBytes, c.maxOutbound, c.sockSendBuf, c.sockRecvBuf)
	}
	if _, err := parseConfig([]string{"--max-message", "16MB!"}, io.Discard); err == nil {
		t.Fatal("a bad size was accepted")
	}
}

// TestConfigFileParseErrorNeverPanics: a syntax error the TOML library
// reports at line 0 (an unterminated string before CRLF) is refused with a
// configError, not a panic while rendering the error's position. Found by
// FuzzConfigFile in CI.
func TestConfigFileParseErrorNeverPanics(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []string{"\"\r\n", "a='\r\n", "a.\"\r\n", "a = \"x\n"} {
		path := filepath.Join(dir, "wsd.toml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := parseConfig([]string{"--config", path}, io.Discard)
		var ce *configError
		if !errors.As(err, &ce) || !strings.Contains(ce.msg, path) {
			t.Errorf("%q: got %v, want a configError naming the file", s, err)
		}
	}
}

// FuzzConfigFile: any config file is loaded or refused with a
// configError naming the file, never a panic; sizes never come out
// negative.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"max_message = \"16MiB\"\nrate_limit = 20\n",
		"[namespaces.chat]\nhistory_size = 50\nhistory_ttl = \"5m\"\npresence = true\njoin_leave = true\n",
		"[namespaces.default]\npublish = \"none\"\n", "listen = 1\n", "max_outbound = -5\n",
		"connect_proxy_url = \"http://x\"\nproxy_timeout = \"1s\"\n", "[x]\n", "a = [1, \"b\"]\n", "\x00", "\"\r\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "wsd.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := parseConfig([]string{"--config", path}, io.Discard)
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("%T %v, want a configError", err, err)
			}
			return
		}
		if c.maxMessage < 0 || c.maxOutbound < 0 || c.maxDataBytes < 0 {
			t.Fatalf("negative size: %d %d %d", c.maxMessage, c.maxOutbound, c.maxDataBytes)
		}
	})
}
