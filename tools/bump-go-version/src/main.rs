fn main() {
    kube_tree::cli::exit_with(&bump_go_version::TOOL)
}
