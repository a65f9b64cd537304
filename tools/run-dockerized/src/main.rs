fn main() {
    kube_tree::cli::exit_with(&run_dockerized::TOOL)
}
