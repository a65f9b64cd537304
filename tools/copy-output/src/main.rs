fn main() {
    kube_tree::cli::exit_with(&copy_output::TOOL)
}
