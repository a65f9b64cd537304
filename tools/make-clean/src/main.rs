fn main() {
    kube_tree::cli::exit_with(&make_clean::TOOL)
}
