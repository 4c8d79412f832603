package codec

import "testing"

func TestRequestKeepAlive(t *testing.T) {
	u := &Upgrader{}
	for _, tc := range []struct {
		head       string
		keep, is10 bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, false},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n", false, false},
		{"GET / HTTP/1.0\r\n\r\n", false, true},
		{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, true},
	} {
		req, _, err := u.ReadRequest([]byte(tc.head))
		if err != nil {
			t.Fatalf("%q: %v", tc.head, err)
		}
		if req.KeepAlive() != tc.keep || req.HTTP10() != tc.is10 {
			t.Errorf("%q: KeepAlive %v HTTP10 %v, want %v %v", tc.head, req.KeepAlive(), req.HTTP10(), tc.keep, tc.is10)
		}
	}
}
