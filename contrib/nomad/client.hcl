# A Nomad client agent that runs podman jobs through nomad-driver-husk:
# the plugin directory holds nomad-driver-husk and its nomad-driver-podman
# symlink (meson install puts both in <libexecdir>/nomad/plugins).
client {
  enabled = true
}

plugin_dir = "/usr/local/libexec/nomad/plugins"

# driver = "podman" jobs: nomad-driver-podman's plugin options.
plugin "podman" {
  args = ["--state-dir=/var/lib/husk-driver"]
  config {
    volumes {
      enabled = true
    }
    gc {
      container = true
    }
  }
}

# The native name, same schema: driver = "husk".
plugin "husk" {
  args = ["--state-dir=/var/lib/husk-driver"]
  config {}
}
