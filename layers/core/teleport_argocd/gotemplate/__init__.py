"""Go's text/template, as tbot uses it for its templated settings.

tbot renders `cluster_name_template`, `secret_labels` and `secret_annotations` with Go's
text/template (default options, no extra functions) over a struct with the fields ClusterName,
KubeName and Labels. No maintained Python library renders Go templates, so this module is
written by hand. It renders byte for byte what Go renders, and that claim is checked against Go
itself by the table in tests/gotemplate/vectors.json.

Supported: text and trim markers, comments, field and map-key access (a missing key is
``<no value>``), variables (``$``, ``:=``, ``=``), pipes and parentheses, ``if``/``else if``,
``with``/``else with``, ``range`` over maps (sorted keys) and integers with ``break`` and
``continue``, constants (strings, raw strings, characters, integers, floats, booleans, nil), and
the functions and, or, not, len, index, eq, ne, lt, le, gt, ge, print, printf, println, html, js
and urlquery. printf knows the verbs %v %s %q %d %x %X %t %c and %% with flags, width and
precision.

Refused when parsing, although Go accepts them: define, template and block (the data has no
other templates), the functions call and slice, complex and hexadecimal floating-point
constants, escapes that produce bytes that are not UTF-8 text, printf verbs outside the list
above, ``*`` widths, the ``#`` flag with %v, and templates nested deeper than MAX_DEPTH.
Rendering stops with TemplateError past MAX_OUTPUT characters or MAX_STEPS evaluation steps.
Everything Go refuses, at parse or execution time, raises TemplateError with a line:column.

The package is cut as Go cuts text/template: `template` (the public face: parse and Template),
`lex`, `nodes` and `parser` (Go's text/template/parse), `exec`, `funcs`, and `fmt` (the part of Go's
fmt that print, printf and println use), over `values` (Go values as modelled here) and `errors`.
"""

from teleport_argocd.gotemplate.errors import TemplateError
from teleport_argocd.gotemplate.exec import MAX_OUTPUT, MAX_STEPS
from teleport_argocd.gotemplate.parser import MAX_DEPTH
from teleport_argocd.gotemplate.template import Template, parse
from teleport_argocd.gotemplate.values import DATA_FIELDS

__all__ = ["DATA_FIELDS", "MAX_DEPTH", "MAX_OUTPUT", "MAX_STEPS", "Template", "TemplateError", "parse"]
