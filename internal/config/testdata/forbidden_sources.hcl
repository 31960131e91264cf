run "mounts" {}

agent "a" {
  command = ["true"]

  mount {
    source = "/"
    target = "/m/root"
  }
  mount {
    source = "/proc"
    target = "/m/proc"
  }
  mount {
    source = "/sys/fs/cgroup"
    target = "/m/sys"
  }
  mount {
    source = "/dev/null"
    target = "/m/dev"
  }
  mount {
    source = "/etc/passwd"
    target = "/m/etc"
  }
  mount {
    source = "/boot"
    target = "/m/boot"
  }
  mount {
    source = "/var/run/docker.sock"
    target = "/m/docker.sock"
  }
  mount {
    source = "/run/docker.sock"
    target = "/m/run-docker.sock"
  }
  mount {
    source = "/run/containerd"
    target = "/m/containerd"
  }
  mount {
    source = "/run/podman/podman.sock"
    target = "/m/podman"
  }
  mount {
    source = "/run/user/1000/docker.sock"
    target = "/m/rootless"
  }
  mount {
    source = "/var/lib/docker/volumes"
    target = "/m/volumes"
  }
  mount {
    source = "/var/lib/containerd"
    target = "/m/containerd-state"
  }
  mount {
    source = "/var"
    target = "/m/var"
  }
  mount {
    source = "/home/alice/.local/share/docker"
    target = "/m/rootless-state"
  }
  mount {
    source = "/home/alice"
    target = "/m/home"
  }
  mount {
    source = "/tmp/tmux-1000"
    target = "/m/tmux"
  }
  mount {
    source = "/tmp/.X11-unix"
    target = "/m/x11"
  }
  mount {
    source = "/nonexistent/xdg/bus"
    target = "/m/xdg"
  }
  mount {
    source = "./etc-link"
    target = "/m/etc-link"
  }
  mount {
    source = "work/../../../../../../../etc"
    target = "/m/dotdot"
  }
}
