package main

import (
	"context"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/secrets"
)

// secretDiagnostics reads every secret source of cfg (the operator's
// environment, files, commands with their timeouts) so that validate,
// plan and apply report a source that cannot be read as a diagnostic at
// its file:line:col, before the engine is touched. The values are
// dropped; apply reads them again when it stores them.
func secretDiagnostics(cfg *config.Config) hcl.Diagnostics {
	_, errs := secrets.Resolver{}.All(context.Background(), cfg)
	var diags hcl.Diagnostics
	for _, e := range errs {
		diags = append(diags, e.Diagnostic())
	}
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int { return a.Subject.Start.Byte - b.Subject.Start.Byte })
	return diags
}
