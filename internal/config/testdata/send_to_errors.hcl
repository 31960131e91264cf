run "team" {}

agent "pm" {
  command = ["true"]
  send_to = [
    "Eng-*",    # uppercase
    "eng-[",    # malformed
    "",         # empty
    "1st",      # not a name
    "eng_1",    # underscore
    "../eng",   # path characters
    "[^a]*",    # negation is not allowed
    "enj-*",    # typo: matches nothing
    "qa",       # no such agent
    "oper*",    # globs never match the operator
    "operator", # fine
    "pm",       # fine: explicitly itself
    "eng-*",    # fine
  ]
}

agent "eng" {
  count   = 2
  command = ["true"]
  # eng-2 gets eng-3, which does not exist.
  send_to = ["pm", "eng-${count.index + 2}"]
}

agent "computed" {
  command = ["true"]
  send_to = concat(["nobody"], [])
}

agent "scalar" {
  command = ["true"]
  send_to = "pm"
}

agent "nulls" {
  command = ["true"]
  send_to = ["pm", null]
}
