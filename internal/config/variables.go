package config

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "default"},
		{Name: "type"},
		{Name: "description"},
		{Name: "sensitive"},
	},
}

// variable is one `variable "NAME" { ... }` block, as Terraform has them.
type variable struct {
	block *hcl.Block
	typ   cty.Type // cty.DynamicPseudoType when no type is declared
	typed bool
	value cty.Value // cty.NilVal while unset; cty.DynamicVal after an error
	// sensitive: the value is marked (sensitiveMark) in expressions, so it
	// is refused everywhere but a secret's value and never printed.
	sensitive bool
}

// variables declares the variables, applies -var values and builds d.ctx.
func (d *decoder) variables(blocks []*hcl.Block, cli map[string]string) {
	decl := map[string]*variable{}
	var order []string
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			d.errorf(b.LabelRanges[0], "Invalid variable name",
				"%q is not a valid variable name. Start with a letter or underscore and use only letters, digits, underscores and dashes.", name)
			continue
		}
		if prev, dup := decl[name]; dup {
			d.errorf(b.LabelRanges[0], "Duplicate variable declaration",
				"A variable named %q is already declared at %s. Remove one of the blocks or rename it.", name, at(prev.block.DefRange))
			continue
		}
		v := d.variable(b)
		decl[name] = v
		order = append(order, name)
	}
	d.declared = map[string]bool{}
	for name := range decl {
		d.declared[name] = true
	}

	// RUNNER_VAR_name, then -var-file files, then -var: later wins, as in
	// Terraform.
	d.envValues(decl)
	d.varFileValues(decl)
	// Sorted, so diagnostics come out in a stable order.
	for _, name := range slices.Sorted(maps.Keys(cli)) {
		v, ok := decl[name]
		if !ok {
			d.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail: fmt.Sprintf("A value for %q was given with -var, but the configuration declares no variable %q. Declare it with a variable %q {} block, or drop the -var.",
					name, name, name),
			})
			continue
		}
		v.value = d.cliValue(name, cli[name], v)
	}

	values := map[string]cty.Value{}
	for _, name := range order {
		v := decl[name]
		if v.value == cty.NilVal {
			d.errorf(v.block.DefRange, "No value for required variable",
				"Variable %q has no default, so it must be set. Run with -var %s=VALUE, -var-file FILE or RUNNER_VAR_%s in the environment, or give the block a default.", name, name, name)
			v.value = cty.DynamicVal // unknown: expressions using it are skipped, not reported again
		}
		if v.sensitive {
			v.value = v.value.Mark(sensitiveMark)
		}
		values[name] = v.value
	}
	d.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": varsObject(values)},
		Functions: functions(d.dir),
	}
}

func (d *decoder) variable(b *hcl.Block) *variable {
	v := &variable{block: b, typ: cty.DynamicPseudoType}
	content, diags := b.Body.Content(variableSchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["type"]; ok {
		ty, diags := typeexpr.TypeConstraint(attr.Expr)
		d.diags = append(d.diags, diags...)
		if !diags.HasErrors() {
			v.typ, v.typed = ty, true
		}
	}
	if attr, ok := content.Attributes["description"]; ok {
		// Evaluated only so that a non-string description is reported.
		val, diags := attr.Expr.Value(nil)
		d.diags = append(d.diags, diags...)
		if _, err := convert.Convert(val, cty.String); err != nil && !diags.HasErrors() {
			d.errorf(attr.Expr.Range(), "Invalid variable description", "A description must be a string.")
		}
	}
	if attr, ok := content.Attributes["sensitive"]; ok {
		val, diags := attr.Expr.Value(nil)
		d.diags = append(d.diags, diags...)
		if !diags.HasErrors() {
			if val.Type() != cty.Bool || val.IsNull() {
				d.errorf(attr.Expr.Range(), "Invalid sensitive", "sensitive is true or false.")
			} else {
				v.sensitive = val.True()
			}
		}
	}
	if attr, ok := content.Attributes["default"]; ok {
		// No variables or functions here: a default is a literal, as in Terraform.
		val, diags := attr.Expr.Value(nil)
		d.diags = append(d.diags, diags...)
		if diags.HasErrors() {
			v.value = cty.DynamicVal
			return v
		}
		conv, err := convert.Convert(val, v.typ)
		if err != nil {
			d.errorf(attr.Expr.Range(), "Invalid default value for variable",
				"The default does not match the variable's type %s: %s.", typeexpr.TypeString(v.typ), errText(err))
			v.value = cty.DynamicVal
			return v
		}
		v.value = conv
	}
	return v
}

// cliValue turns a -var value into a cty value. As in Terraform, a value for
// a string variable is taken literally; any other value is parsed as an HCL
// expression, so -var 'cmd=["sh","-c","x"]' sets a list. An untyped variable
// counts as a string variable unless its default is something else.
func (d *decoder) cliValue(name, raw string, v *variable) cty.Value {
	literal := v.typ == cty.String ||
		!v.typed && (v.value == cty.NilVal || v.value.IsNull() || v.value.Type() == cty.String)
	if literal {
		return cty.StringVal(raw)
	}
	if v.sensitive {
		return d.sensitiveExprValue(name, raw, v, "-var")
	}
	// Registered as a file so errors in the value are shown with a snippet.
	filename := fmt.Sprintf("<value for var.%s>", name)
	d.parser.AddFile(filename, &hcl.File{Bytes: []byte(raw)})
	// hcl's own messages ("Variables not allowed" for -var n=abc) do not say
	// why the value was parsed at all, so say it.
	kind := "has type " + typeexpr.TypeString(v.typ)
	if !v.typed {
		kind = "has a default that is not a string"
	}
	hint := fmt.Sprintf(" The -var value for %q is read as an HCL expression because the variable %s: quote strings, and write lists as [\"a\", \"b\"].", name, kind)
	expr, diags := hclsyntax.ParseExpression([]byte(raw), filename, hcl.InitialPos)
	var val cty.Value
	if !diags.HasErrors() {
		var more hcl.Diagnostics
		val, more = expr.Value(nil)
		diags = append(diags, more...)
	}
	if diags.HasErrors() {
		for _, diag := range diags {
			diag.Detail += hint
		}
		d.diags = append(d.diags, diags...)
		return cty.DynamicVal
	}
	conv, err := convert.Convert(val, v.typ)
	if err != nil {
		d.errorf(expr.Range(), "Invalid value for variable",
			"The -var value for %q does not match the variable's type %s: %s.", name, typeexpr.TypeString(v.typ), errText(err))
		return cty.DynamicVal
	}
	return conv
}
