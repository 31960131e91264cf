package config

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// scope is where an attribute is evaluated: the file's context, or inside a
// counted agent a child context that adds count.index.
type scope struct {
	ctx     *hcl.EvalContext
	counted bool
}

// fail reports an invalid value at expr: an attribute's expression, or the
// element or key of a literal list or map that is wrong. The expression and
// context go along so the diagnostic shows the values it used ("with
// count.index as 2").
func (d *decoder) fail(s scope, expr hcl.Expression, summary, detail string, args ...any) {
	d.add(&hcl.Diagnostic{
		Severity:    hcl.DiagError,
		Summary:     summary,
		Detail:      fmt.Sprintf(detail, args...),
		Subject:     expr.Range().Ptr(),
		Expression:  expr,
		EvalContext: s.ctx,
	})
}

// value evaluates attr and converts it to ty. It returns cty.NilVal when there
// is nothing to use: the attribute is absent or null (callers apply their
// default), or it is invalid (reported), or it depends on a variable that
// already failed. A null value for a required attribute is reported.
func (d *decoder) value(s scope, attr *hcl.Attribute, ty cty.Type, required bool) cty.Value {
	if attr == nil || !d.refsOK(s, attr.Expr) {
		return cty.NilVal
	}
	val, diags := attr.Expr.Value(s.ctx)
	d.diags = append(d.diags, diags...)
	switch {
	case diags.HasErrors() || !val.IsWhollyKnown():
		return cty.NilVal
	case val.ContainsMarked():
		d.sensitiveRef(s, attr)
		return cty.NilVal
	case val.IsNull():
		if required {
			d.fail(s, attr.Expr, "Missing value", "%q cannot be null. Give it a value.", attr.Name)
		}
		return cty.NilVal
	}
	conv, err := convert.Convert(val, ty)
	if err != nil {
		d.fail(s, attr.Expr, "Incorrect attribute value type",
			"Inappropriate value for attribute %q: %s.", attr.Name, errText(err))
		return cty.NilVal
	}
	return conv
}

// refsOK checks every reference in expr before it is evaluated, so mistakes
// get a message that says what can be referenced instead of a generic one.
func (d *decoder) refsOK(s scope, expr hcl.Expression) bool {
	ok := true
	for _, t := range expr.Variables() {
		root, rng := t.RootName(), t.SourceRange()
		var field string
		if len(t) > 1 {
			if a, isAttr := t[1].(hcl.TraverseAttr); isAttr {
				field = a.Name
			}
		}
		switch {
		case root == "var" && field == "":
			d.errorf(rng, "Invalid reference", "Refer to a variable as var.NAME.")
		case root == "var" && !d.declared[field]:
			d.errorf(rng, "Reference to undeclared input variable",
				"No variable named %q is declared. Declare it with a variable %q {} block, or fix the name.", field, field)
		case root == "count" && !s.counted:
			d.errorf(rng, `Reference to "count" in non-counted context`,
				"count.index can only be used in an agent block that sets count.")
		case root == "count" && field != "index":
			d.errorf(rng, "Invalid count reference", "The only attribute of count is count.index, the instance number starting at 0.")
		case root == "var" || root == "count":
			continue
		default:
			d.errorf(rng, "Reference to unknown name",
				"There is nothing named %q. Expressions can refer to var.NAME and, in an agent with count, count.index.", root)
		}
		ok = false
	}
	return ok
}

func (d *decoder) str(s scope, attr *hcl.Attribute, required bool) (string, bool) {
	v := d.value(s, attr, cty.String, required)
	if v == cty.NilVal {
		return "", false
	}
	return v.AsString(), true
}

func (d *decoder) boolean(s scope, attr *hcl.Attribute) (bool, bool) {
	v := d.value(s, attr, cty.Bool, false)
	if v == cty.NilVal {
		return false, false
	}
	return v.True(), true
}

// number returns the attribute as a big.Float so range checks see the exact
// value, not one rounded to fit an int64.
func (d *decoder) number(s scope, attr *hcl.Attribute, required bool) (*big.Float, bool) {
	v := d.value(s, attr, cty.Number, required)
	if v == cty.NilVal {
		return nil, false
	}
	return v.AsBigFloat(), true
}

// integer returns the attribute as a whole number in [lo, hi]; why says what
// the attribute is for, so the error helps pick a value.
func (d *decoder) integer(s scope, attr *hcl.Attribute, lo, hi int64, why string, required bool) (int64, bool) {
	f, ok := d.number(s, attr, required)
	if !ok {
		return 0, false
	}
	if !f.IsInt() || f.Cmp(big.NewFloat(float64(lo))) < 0 || f.Cmp(big.NewFloat(float64(hi))) > 0 {
		d.fail(s, attr.Expr, fmt.Sprintf("Invalid %s", attr.Name),
			"%s must be a whole number from %d to %d; got %s. %s", attr.Name, lo, hi, f.Text('g', 10), why)
		return 0, false
	}
	n, _ := f.Int64()
	return n, true
}

// strings returns a list of strings; elemExpr locates an element for errors.
func (d *decoder) strings(s scope, attr *hcl.Attribute, required bool) ([]string, bool) {
	v := d.value(s, attr, cty.List(cty.String), required)
	if v == cty.NilVal {
		return nil, false
	}
	out := []string{}
	for i, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.fail(s, elemExpr(attr, i), "Null list element", "Element %d of %q is null; every element must be a string.", i, attr.Name)
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}

// elemExpr is element i of a literal list, so an error can point at the
// element; for a computed list it is the whole expression.
func elemExpr(attr *hcl.Attribute, i int) hcl.Expression {
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() || i >= len(exprs) {
		return attr.Expr
	}
	return exprs[i]
}

// keyExpr is key's expression in a literal object (its value's when value is
// set), or the whole expression for a computed map.
func keyExpr(s scope, attr *hcl.Attribute, key string, value bool) hcl.Expression {
	pairs, diags := hcl.ExprMap(attr.Expr)
	if diags.HasErrors() {
		return attr.Expr
	}
	for _, p := range pairs {
		k, diags := p.Key.Value(s.ctx)
		if diags.HasErrors() || !k.IsKnown() || k.IsNull() {
			continue
		}
		if k, err := convert.Convert(k, cty.String); err == nil && k.AsString() == key {
			if value {
				return p.Value
			}
			return p.Key
		}
	}
	return attr.Expr
}

// errText formats a conversion error, naming the element it is about the
// way cty's own type-mismatch messages do ("element 0: element \"a\": ...").
func errText(err error) string {
	var pe cty.PathError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	var parts []string
	for _, step := range pe.Path {
		switch step := step.(type) {
		case cty.IndexStep:
			if step.Key.Type() == cty.String {
				parts = append(parts, fmt.Sprintf("element %q", step.Key.AsString()))
			} else {
				parts = append(parts, "element "+step.Key.AsBigFloat().Text('f', -1))
			}
		case cty.GetAttrStep:
			parts = append(parts, fmt.Sprintf("attribute %q", step.Name))
		}
	}
	return strings.Join(append(parts, pe.Error()), ": ")
}
