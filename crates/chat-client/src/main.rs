fn main() {
    eprintln!("chat-client: not built yet");
    std::process::exit(1);
}
