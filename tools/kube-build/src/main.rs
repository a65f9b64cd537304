fn main() {
    kube_tree::cli::exit_with(&kube_build::TOOL)
}
