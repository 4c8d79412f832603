package pubsub

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONString: every string becomes valid JSON that decodes back
// to it (invalid UTF-8 as U+FFFD, like encoding/json).
func FuzzAppendJSONString(f *testing.F) {
	f.Add("news")
	f.Add("chat:\"lobby\"\n\u2028</script>")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encoded as invalid JSON %s: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q came back as %q", s, back)
		}
	})
}
