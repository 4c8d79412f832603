package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestAPIPubKeepsConnectionsAlive(t *testing.T) {
	var closeEach atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "apikey K" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if closeEach.Load() {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte(`{"offset":1}`))
	}))
	t.Cleanup(srv.Close)
	cfg := APIPubConfig{URL: srv.URL + "/api/publish", Key: "K", Channel: "c", Size: 16, Conns: 2, Duration: 300 * time.Millisecond}
	r, err := RunAPIPub(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK == 0 || r.Failed != 0 || r.Reconnects != 0 {
		t.Fatalf("keep-alive server: %+v", r)
	}
	closeEach.Store(true)
	cfg.Conns = 1
	r, err = RunAPIPub(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK < 2 || r.Reconnects == 0 || r.Failed != 0 {
		t.Fatalf("closing server: redials not counted: %+v", r)
	}
}
