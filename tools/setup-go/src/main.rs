fn main() {
    kube_tree::cli::exit_with(&setup_go::TOOL)
}
