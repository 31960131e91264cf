package config

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// sensitiveMark marks the values of sensitive variables in expressions.
// value refuses a marked value, so a sensitive variable reaches nothing
// but a secret's value = var.NAME, and diagnostics print it as
// "(sensitive value)".
const sensitiveMark = "sensitive"

// EnvVarPrefix is how the environment sets a variable: RUNNER_VAR_name.
const EnvVarPrefix = "RUNNER_VAR_"

// envValues applies RUNNER_VAR_name from the environment. As in
// Terraform, a name no variable declares is ignored: the environment is
// shared by every agents file.
func (d *decoder) envValues(decl map[string]*variable) {
	environ := d.environ
	if environ == nil {
		environ = os.Environ()
	}
	for _, kv := range environ {
		k, val, ok := strings.Cut(kv, "=")
		name, found := strings.CutPrefix(k, EnvVarPrefix)
		if !ok || !found {
			continue
		}
		if v := decl[name]; v != nil {
			v.value = d.rawValue(name, val, v, k)
		}
	}
}

// rawValue is a value given as text (-var, RUNNER_VAR_): literal for a
// string variable, an HCL expression otherwise.
func (d *decoder) rawValue(name, raw string, v *variable, from string) cty.Value {
	literal := v.typ == cty.String ||
		!v.typed && (v.value == cty.NilVal || v.value.IsNull() || v.value.Type() == cty.String)
	switch {
	case literal:
		return cty.StringVal(raw)
	case v.sensitive:
		return d.sensitiveExprValue(name, raw, v, from)
	}
	return d.cliValue(name, raw, v)
}

// sensitiveExprValue parses a sensitive variable's non-string value. Its
// errors name the variable and never show the text.
func (d *decoder) sensitiveExprValue(name, raw string, v *variable, from string) cty.Value {
	expr, diags := hclsyntax.ParseExpression([]byte(raw), "<sensitive>", hcl.InitialPos)
	var val cty.Value
	if !diags.HasErrors() {
		val, diags = expr.Value(nil)
	}
	if !diags.HasErrors() {
		var err error
		if val, err = convert.Convert(val, v.typ); err == nil {
			return val
		}
	}
	d.add(&hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid value for sensitive variable",
		Detail: fmt.Sprintf("The value %s gives for %q is not a valid %s (it is sensitive, so it is not shown). Check how it is written.",
			from, name, typeexpr.TypeString(v.typ)),
	})
	return cty.DynamicVal
}

// varFileValues applies each -var-file in order: an HCL file of
// NAME = VALUE attributes, as Terraform's .tfvars.
func (d *decoder) varFileValues(decl map[string]*variable) {
	for _, path := range d.varFiles {
		src, err := readConfigFile(path)
		if err != nil {
			d.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read the variables file",
				Detail:   ReadProblem(path, err) + ". Check the -var-file path.",
			})
			continue
		}
		// A parser of its own: the file's lines hold values, perhaps
		// sensitive ones, so diagnostics give FILE:LINE:COL but never show
		// its source.
		file, diags := hclparse.NewParser().ParseHCL(src, path)
		d.diags = append(d.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		attrs, diags := file.Body.JustAttributes()
		d.diags = append(d.diags, diags...)
		for _, name := range slices.Sorted(maps.Keys(attrs)) {
			attr := attrs[name]
			v := decl[name]
			if v == nil {
				d.add(&hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Value for undeclared variable",
					Detail:   fmt.Sprintf("%s sets %q, but the configuration declares no variable %q; the value is ignored.", path, name, name),
					Subject:  attr.NameRange.Ptr(),
				})
				continue
			}
			val, diags := attr.Expr.Value(nil)
			if v.sensitive && diags.HasErrors() {
				// hcl's messages would show the line that holds the value.
				d.errorf(attr.NameRange, "Invalid value for sensitive variable",
					"The value for %q is not a literal value (it is sensitive, so it is not shown): write a quoted string.", name)
				v.value = cty.DynamicVal
				continue
			}
			d.diags = append(d.diags, diags...)
			if diags.HasErrors() {
				v.value = cty.DynamicVal
				continue
			}
			conv, err := convert.Convert(val, v.typ)
			if err != nil {
				d.errorf(attr.NameRange, "Invalid value for variable",
					"The value for %q does not match the variable's type %s.", name, typeexpr.TypeString(v.typ))
				v.value = cty.DynamicVal
				continue
			}
			v.value = conv
		}
	}
}

// sensitiveRef is the error for a sensitive value anywhere but a secret.
func (d *decoder) sensitiveRef(s scope, attr *hcl.Attribute) {
	d.fail(s, attr.Expr, "Sensitive value outside a secret",
		"%q uses a sensitive variable, whose value would show in docker inspect, plan or status. A sensitive variable may only be a secret's value (secret \"NAME\" { value = var.NAME ... }).", attr.Name)
}
