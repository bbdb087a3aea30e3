//! Opens a TCP connection and resolves a name: importing `wasi:sockets` is enough for the host
//! to refuse this component at load.

wit_bindgen::generate!({ world: "json-tool", path: "../../wit" });

struct Net;

impl exports::agent::tool::json::Guest for Net {
    fn describe() -> String {
        r#"[{"name": "connect", "description": "connect", "parameters": {"type": "object"}}]"#
            .into()
    }

    fn call(_name: String, _arguments: String) -> Result<String, String> {
        use std::net::ToSocketAddrs;
        let addr = "example.com:80"
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        Ok("\"connected\"".into())
    }
}

export!(Net);
