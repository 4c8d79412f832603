package wsproto

import (
	"fmt"
	"testing"

	"github.com/wsdhq/wsd/pubsub"
)

// errorFor recognises pubsub's errors through wrapping: a broker that adds
// context with %w must not turn a bad channel into an internal error.
func TestErrorForWrapped(t *testing.T) {
	cases := map[error]string{
		pubsub.ErrBadChannel:       CodeBadChannel,
		pubsub.ErrUnknownNamespace: CodeUnknownNamespace,
		pubsub.ErrBadData:          CodeBadRequest,
		pubsub.ErrPresenceDisabled: CodePresenceDisabled,
		fmt.Errorf("disk on fire"): CodeInternal,
	}
	for err, want := range cases {
		for _, e := range []error{err, fmt.Errorf("broker: publish %q: %w", "chat:1", err)} {
			if got := errorFor(e).Code; got != want {
				t.Errorf("errorFor(%v) = %s, want %s", e, got, want)
			}
		}
	}
}

// A code that is not wsd's own is counted apart, never as the last of
// wsd's codes.
func TestCodeIndexOther(t *testing.T) {
	if got := codeIndex("illegal_move"); got != numCodes {
		t.Fatalf("codeIndex(unknown) = %d, want %d", got, numCodes)
	}
	codes := allCodes()
	for i, c := range codes {
		if codeIndex(c) != i {
			t.Fatalf("codeIndex(%q) = %d, want %d", c, codeIndex(c), i)
		}
	}
}
