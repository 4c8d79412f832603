package bench

import (
	_ "embed"
	"html/template"
	"io"
	"os"
	"time"
)

// Report is what the HTML page shows: one or more results (several servers
// or scenarios) and the machine they ran on.
type Report struct {
	Title     string    `json:"title"`
	Generated time.Time `json:"generated"`
	Machine   Machine   `json:"machine"`
	Results   []*Result `json:"results"`
	Notes     []string  `json:"notes,omitempty"`
}

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Parse(reportTemplate))

// WriteHTMLFile writes the report to path.
func WriteHTMLFile(path string, r Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteHTML(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteHTML writes a self-contained page: the results as JSON inside the
// page and a small script that draws every chart as inline SVG. It fetches
// nothing from the network.
func WriteHTML(w io.Writer, r Report) error {
	if r.Generated.IsZero() {
		r.Generated = time.Now().UTC()
	}
	return reportTmpl.Execute(w, r)
}
