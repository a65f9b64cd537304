fn main() {
    kube_tree::cli::exit_with(&build_shell::TOOL)
}
