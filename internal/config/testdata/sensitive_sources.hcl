# HOME is $TMP/home in these tests.
run "secrets" {}

agent "a" {
  command = ["true"]

  mount {
    source = "./home"
    target = "/m/home"
  }
  mount {
    source = "./home/.ssh"
    target = "/m/ssh"
  }
  mount {
    source = "home/.ssh/id_ed25519"
    target = "/m/key"
  }
  mount {
    source = "./home/.aws"
    target = "/m/aws"
  }
  mount {
    source = "./home/.kube/config"
    target = "/m/kube"
  }
  mount {
    source = "./home/.gnupg"
    target = "/m/gnupg"
  }
  mount {
    source = "./home/.config"
    target = "/m/config"
  }
  mount {
    source = "./home/.config/gcloud"
    target = "/m/gcloud"
  }
  mount {
    source = "./home/.bashrc"
    target = "/m/bashrc"
  }
  mount {
    source = "./home/.profile"
    target = "/m/profile"
  }
  mount {
    source = "./home/.zshrc"
    target = "/m/zshrc"
  }
  mount {
    source = "./home/.docker"
    target = "/m/docker"
  }
  mount {
    source = "/home/bob/.ssh"
    target = "/m/bob-ssh"
  }
  mount {
    source = "/root/.aws/credentials"
    target = "/m/root-aws"
  }
  mount {
    source = "/home"
    target = "/m/homes"
  }
  # A link in the config's directory that leads to ~/.ssh.
  mount {
    source = "./keys"
    target = "/m/keys"
  }
  # allow_sensitive does not lift what is forbidden outright.
  mount {
    source          = "./home/.docker"
    target          = "/m/docker-allowed"
    allow_sensitive = true
  }
  # Inside the home directory but not a secret: fine.
  mount {
    source = "./home/project"
    target = "/m/project"
  }
}
