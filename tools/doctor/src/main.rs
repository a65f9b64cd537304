fn main() {
    kube_tree::cli::exit_with(&doctor::TOOL)
}
