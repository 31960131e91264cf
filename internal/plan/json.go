package plan

// JSON is the machine-readable plan (`runner plan -json`), in the spirit of
// Terraform's: format_version, the planned action of every agent with its
// attribute changes, the run-level changes, and the summary counts.
// Sensitive values never appear: a View holds Sensitive in their place.
type JSON struct {
	FormatVersion string       `json:"format_version"`
	Run           string       `json:"run"`
	Engine        string       `json:"engine,omitempty"`
	Changes       bool         `json:"changes"`
	Summary       JSONSummary  `json:"summary"`
	RunChanges    []Change     `json:"run_changes"`
	Actions       []JSONAction `json:"actions"`
	Warnings      []string     `json:"warnings"`
	// Weakening counts the changes that weaken isolation (marked ! in the
	// plan); each also has its weakens field.
	Weakening int `json:"weakening"`
}

// JSONSummary are the plan's counts.
type JSONSummary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Replace int `json:"replace"`
	Delete  int `json:"delete"`
	Keep    int `json:"keep"`
}

// JSONAction is one agent's planned action.
type JSONAction struct {
	Agent  string `json:"agent"`
	Action Kind   `json:"action"`
	Reason string `json:"reason,omitempty"`
	// Containers are the IDs of the containers the action removes
	// (replace, delete) or keeps.
	Containers []string `json:"containers,omitempty"`
	Changes    []Change `json:"changes"`
}

// FormatVersion is JSON.FormatVersion; it changes when a field changes
// meaning or goes away (new fields do not change it).
const FormatVersion = "1.0"

// ToJSON is p in its machine-readable form.
func (p Plan) ToJSON(engine string) JSON {
	j := JSON{
		FormatVersion: FormatVersion, Run: p.Run, Engine: engine, Changes: p.Changes(),
		Summary:    JSONSummary{Create: p.Count(Create), Update: p.Count(Update), Replace: p.Count(Replace), Delete: p.Count(Delete), Keep: p.Count(Keep)},
		RunChanges: nonNil(p.RunChanges), Actions: []JSONAction{}, Warnings: p.Warnings, Weakening: len(p.Weakening()),
	}
	if j.Warnings == nil {
		j.Warnings = []string{}
	}
	for _, a := range p.Actions {
		ja := JSONAction{Agent: a.Agent, Action: a.Kind, Reason: a.Reason, Changes: nonNil(a.Changes)}
		for _, c := range a.Existing {
			ja.Containers = append(ja.Containers, c.ID)
		}
		j.Actions = append(j.Actions, ja)
	}
	return j
}

func nonNil(cs []Change) []Change {
	if cs == nil {
		return []Change{}
	}
	return cs
}
