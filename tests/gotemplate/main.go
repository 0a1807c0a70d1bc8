// Command gotemplate renders test cases with Go's own text/template, so that the Python
// renderer in teleport_argocd/gotemplate.py can be compared with it byte for byte.
//
// It reads a JSON list of cases {"name", "template", "data"} on standard input and writes the
// same list with, for each case, either "output" or "error" ("parse" or "exec") plus "message".
// The template is parsed and executed as tbot does: template.New(name).Parse(text), default
// options, no extra functions, executed over a struct with ClusterName, KubeName and Labels.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

// Data has the fields tbot's templates see.
type Data struct {
	ClusterName string
	KubeName    string
	Labels      map[string]string
}

type testCase struct {
	Name     string         `json:"name"`
	Template string         `json:"template"`
	Data     map[string]any `json:"data,omitempty"`
	Refused  bool           `json:"refused,omitempty"`
	Output   *string        `json:"output,omitempty"`
	Error    string         `json:"error,omitempty"`
	Message  string         `json:"message,omitempty"`
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	for i := range cases {
		run(&cases[i])
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(cases); err != nil {
		panic(err)
	}
}

func run(c *testCase) {
	c.Output, c.Error, c.Message = nil, "", ""
	var data Data
	raw, err := json.Marshal(c.Data)
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		panic(err)
	}
	tmpl, err := template.New("test").Parse(c.Template)
	if err != nil {
		c.Error, c.Message = "parse", err.Error()
		return
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, data); err != nil {
		c.Error, c.Message = "exec", err.Error()
		return
	}
	text := out.String()
	c.Output = &text
}
