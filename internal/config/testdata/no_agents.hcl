run "empty" {}
