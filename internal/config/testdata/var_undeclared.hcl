variable "known" {
  default = "x"
}

run "vars" {}

agent "a" {
  command = [var.known, var.unknown]
  image   = var
  user    = local.user
}
