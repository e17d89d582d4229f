//! .NET dependencies: the `<app>.deps.json` file the .NET SDK writes next
//! to an application (dotnet/sdk documentation, "deps.json"
//! runtime-configuration file: `libraries` maps `Name/Version` to an entry
//! whose `type` is `package` for NuGet packages, `project` for the
//! application's own projects and `reference` for assemblies).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize)]
struct Lib {
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Deps {
    #[serde(default)]
    libraries: BTreeMap<String, Lib>,
}

/// NuGet packages of a `*.deps.json`.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let d: Deps = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(d.libraries
        .into_iter()
        .filter(|(_, l)| l.kind.as_deref() == Some("package"))
        .filter_map(|(k, _)| {
            let (n, v) = k.split_once('/')?;
            (!n.is_empty() && !v.is_empty()).then(|| (n.to_string(), v.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_only() {
        let t = br#"{"runtimeTarget":{"name":".NETCoreApp,Version=v6.0"},
          "targets":{".NETCoreApp,Version=v6.0":{}},
          "libraries":{
            "MyApp/1.0.0":{"type":"project","serviceable":false,"sha512":""},
            "Newtonsoft.Json/12.0.3":{"type":"package","serviceable":true,"sha512":"sha512-x","path":"newtonsoft.json/12.0.3"},
            "System.Text.Encodings.Web/4.7.1":{"type":"package"},
            "Microsoft.CSharp.Reference/4.0.0.0":{"type":"reference"}}}"#;
        assert_eq!(
            parse(t),
            Ok(vec![
                ("Newtonsoft.Json".into(), "12.0.3".into()),
                ("System.Text.Encodings.Web".into(), "4.7.1".into())
            ])
        );
        assert!(parse(b"{").is_err());
        assert!(parse(br#"{"libraries":{"A/1":"x"}}"#).is_err());
    }
}
