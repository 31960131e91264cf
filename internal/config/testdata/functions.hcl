variable "team" {
  default = ["Ann", "Bo"]
}

run "funcs" {}

agent "fn" {
  command = concat(["sh", "-c"], [join(" && ", [for n in var.team : "echo ${lower(n)}"])])
  env = {
    PROMPT   = trimspace(file("prompt.txt"))
    UPPER    = upper("shout")
    SPLIT    = length(split(",", "a,b,c"))
    LEN      = length("héllo")
    FORMAT   = format("%s-%03d", "id", 7)
    REPLACED = replace("a-b-c", "-", "_")
    MINMAX   = "${min(3, 1, 2)}..${max(3, 1, 2)}"
    JSON     = jsonencode({ team = var.team, n = 2 })
    TRY      = try(tonumber("x"), "fallback")
    TITLE    = title(join(" ", var.team))
  }
}
