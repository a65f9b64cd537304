fn main() {
    kube_tree::cli::exit_with(&check_vendor::TOOL)
}
