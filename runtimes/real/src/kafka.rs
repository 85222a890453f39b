//! A single-node Kafka broker in KRaft mode (broker and controller in one
//! process) on loopback, its storage in a folder of its own, so it can be
//! killed and started again on the same log.

use std::{path::Path, process::Command, time::Duration};

use supervisor::{Output, Proc, Spec, wait_for_port};

use crate::{RuntimeError, install::Installed};

/// A topic to create: name, partitions, and retention (None: the broker's).
#[derive(Debug, Clone)]
pub struct Topic {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
}

impl Topic {
    pub fn new(name: &str, partitions: u32) -> Self {
        Self {
            name: name.to_owned(),
            partitions,
            retention_ms: None,
        }
    }
}

/// The project's topics, as k8s/base/kafka/topics-job.yaml declares them:
/// six partitions for each topic, three for each dead-letter topic, kept 14
/// days for inspection and replay.
pub fn project_topics() -> Vec<Topic> {
    use todo_core::events::topics;
    let mut all = Vec::new();
    for topic in topics::ALL {
        all.push(Topic::new(topic, 6));
        all.push(Topic {
            retention_ms: Some(14 * 24 * 3600 * 1000),
            ..Topic::new(&topics::dead_letter(topic), 3)
        });
    }
    all
}

#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub port: u16,
    pub controller_port: u16,
    /// Tests that invent topic names let the broker create them on first
    /// use; the project's stack creates its topics up front, as k8s does.
    pub auto_create_topics: bool,
    pub heap_mb: u32,
}

pub struct Kafka {
    pub proc: Proc,
    pub options: KafkaOptions,
    class_path: String,
}

impl Kafka {
    /// Formats `dir` unless it holds a broker's log already, starts the
    /// broker and waits until it answers.
    pub async fn start(
        installed: &Installed,
        dir: &Path,
        options: KafkaOptions,
        output: Output,
    ) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(dir).map_err(RuntimeError::file(dir))?;
        let data = dir.join("data");
        let properties = dir.join("server.properties");
        std::fs::write(&properties, server_properties(&data, &options)).map_err(RuntimeError::file(&properties))?;
        let log_config = dir.join("log4j2.yaml");
        std::fs::write(&log_config, LOG_CONFIG).map_err(RuntimeError::file(&log_config))?;
        let class_path = installed.kafka_class_path();
        if !data.join("meta.properties").exists() {
            let status = Command::new("java")
                .args(["-cp", &class_path, "kafka.tools.StorageTool", "format", "--standalone"])
                // `=`: a generated id can start with `-`, which the tool
                // would take for an option.
                .arg(format!("--cluster-id={}", cluster_id()))
                .arg("-c")
                .arg(&properties)
                .stdout(std::process::Stdio::null())
                .status()
                .map_err(|source| RuntimeError::Run {
                    program: "java".into(),
                    source,
                })?;
            if !status.success() {
                return Err(RuntimeError::Failed {
                    what: format!("formatting Kafka storage in {}", data.display()),
                    detail: status.to_string(),
                });
            }
        }
        let spec = Spec::new("kafka", "java", output).args([
            format!("-Xmx{}m", options.heap_mb),
            format!("-Xms{}m", options.heap_mb.min(128)),
            "-XX:+UseSerialGC".to_owned(),
            format!("-Dlog4j2.configurationFile={}", log_config.display()),
            "-cp".to_owned(),
            class_path.clone(),
            "kafka.Kafka".to_owned(),
            properties.display().to_string(),
        ]);
        let mut kafka = Self {
            proc: Proc::start(spec)?,
            options,
            class_path,
        };
        kafka.wait_until_ready().await?;
        Ok(kafka)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.options.port)
    }

    async fn wait_until_ready(&mut self) -> Result<(), RuntimeError> {
        let timeout = Duration::from_secs(90);
        wait_for_port("Kafka", self.options.port, timeout)
            .await
            .map_err(|err| RuntimeError::NotReady {
                what: "Kafka".into(),
                timeout,
                detail: err.to_string(),
                log: self.proc.log_tail(30),
            })
    }

    /// kill -9 the broker and start it again on the same log.
    pub async fn crash_and_restart(&mut self, down_for: Duration) -> Result<(), RuntimeError> {
        self.proc.kill();
        tokio::time::sleep(down_for).await;
        self.proc.restart()?;
        self.wait_until_ready().await
    }

    /// Runs runtimes/real/kafka/KafkaTool.java's `command` against this broker;
    /// its standard output.
    pub fn tool(&self, command: &str, args: &[String]) -> Result<String, RuntimeError> {
        kafka_tool(&self.class_path, command, &self.bootstrap(), args)
    }

    /// Creates `topics` unless they exist.
    pub fn create_topics(&self, topics: &[Topic]) -> Result<(), RuntimeError> {
        if topics.is_empty() {
            return Ok(());
        }
        let specs: Vec<String> = topics
            .iter()
            .map(|topic| match topic.retention_ms {
                Some(ms) => format!("{}:{}:{ms}", topic.name, topic.partitions),
                None => format!("{}:{}", topic.name, topic.partitions),
            })
            .collect();
        self.tool("topics", &specs).map(|_| ())
    }

    /// Committed offsets and lag per consumer group (KafkaTool `lag`).
    pub fn lag(&self) -> Result<serde_json::Value, RuntimeError> {
        let text = self.tool("lag", &[])?;
        parse_answer("KafkaTool lag", &text)
    }

    /// Lag as [`Kafka::lag`] every `every`, sampled by one long-lived
    /// KafkaTool until the [`LagWatch`] is dropped.
    pub fn lag_every(&self, every: Duration) -> Result<LagWatch, RuntimeError> {
        LagWatch::start(&self.class_path, &self.bootstrap(), every)
    }

    /// Waits until every one of `groups` has joined and been given its partitions.
    pub async fn wait_until_consuming(&self, groups: &[String], timeout: Duration) -> Result<(), RuntimeError> {
        wait_until_consuming(&self.class_path, &self.bootstrap(), groups, timeout).await
    }

    /// Republishes the dead letters of `dead_letter_topic` (all, or those
    /// with the given event ids) to the topic they came from (KafkaTool
    /// `replay`); returns how many.
    pub fn replay(&self, dead_letter_topic: &str, ids: &[&str]) -> Result<u64, RuntimeError> {
        let mut args = vec![dead_letter_topic.to_owned()];
        args.extend(ids.iter().map(|id| (*id).to_owned()));
        let text = self.tool("replay", &args)?;
        parse_answer("KafkaTool replay", &text)?["replayed"]
            .as_u64()
            .ok_or_else(|| RuntimeError::Answer {
                what: "KafkaTool replay".into(),
                detail: text,
            })
    }

    /// The records of every dead-letter topic (KafkaTool `dead-letters`).
    pub fn dead_letters(&self) -> Result<serde_json::Value, RuntimeError> {
        let text = self.tool("dead-letters", &["1000".to_owned()])?;
        parse_answer("KafkaTool dead-letters", &text)
    }
}

/// The lag samples of one KafkaTool `lag-every`, newest last.
pub struct LagWatch {
    child: std::process::Child,
    samples: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, serde_json::Value)>>>,
}

impl LagWatch {
    fn start(class_path: &str, bootstrap: &str, every: Duration) -> Result<Self, RuntimeError> {
        use std::io::BufRead;
        let mut child = kafka_tool_command(class_path, "lag-every", bootstrap)
            .arg(every.as_millis().to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|source| RuntimeError::Run {
                program: "java".into(),
                source,
            })?;
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let sink = samples.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(lag) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push((std::time::Instant::now(), lag));
                }
            }
        });
        Ok(Self { child, samples })
    }

    /// Every sample so far, with when it was read.
    pub fn samples(&self) -> Vec<(std::time::Instant, serde_json::Value)> {
        self.samples_from(0)
    }

    /// The samples after the first `seen`, so a poller copies only what is new.
    pub fn samples_from(&self, seen: usize) -> Vec<(std::time::Instant, serde_json::Value)> {
        let samples = self.samples.lock().unwrap();
        samples.get(seen..).map(<[_]>::to_vec).unwrap_or_default()
    }
}

impl Drop for LagWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// KafkaTool's JSON answer.
fn parse_answer(what: &str, text: &str) -> Result<serde_json::Value, RuntimeError> {
    serde_json::from_str(text).map_err(|err| RuntimeError::Answer {
        what: what.to_owned(),
        detail: format!("{err}: {text}"),
    })
}

/// Whether `group` has members with partitions assigned: it consumes.
fn group_is_consuming(groups: &serde_json::Value, group: &str) -> bool {
    groups.as_array().into_iter().flatten().any(|entry| {
        entry["group"] == group
            && entry["state"]
                .as_str()
                .is_some_and(|state| state.eq_ignore_ascii_case("stable"))
            && entry["partitions"].as_u64().unwrap_or(0) > 0
    })
}

/// Waits until every one of `groups` has joined and been given its
/// partitions on the broker at `bootstrap`; on timeout, says which did not
/// and what the broker reported.
async fn wait_until_consuming(
    class_path: &str,
    bootstrap: &str,
    groups: &[String],
    timeout: std::time::Duration,
) -> Result<(), RuntimeError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let text = kafka_tool(class_path, "groups", bootstrap, &[]).unwrap_or_default();
        let described: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let waiting: Vec<&String> = groups
            .iter()
            .filter(|group| !group_is_consuming(&described, group))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(RuntimeError::NotReady {
                what: format!("consumer groups {waiting:?}"),
                timeout,
                detail: described.to_string(),
                log: String::new(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Runs KafkaTool with `class_path` (libs and the compiled tool).
pub fn kafka_tool(class_path: &str, command: &str, bootstrap: &str, args: &[String]) -> Result<String, RuntimeError> {
    let output = kafka_tool_command(class_path, command, bootstrap)
        .args(args)
        .output()
        .map_err(|source| RuntimeError::Run {
            program: "java".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(RuntimeError::Failed {
            what: format!("KafkaTool {command}"),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `java ... KafkaTool <command> <bootstrap>`, a small client JVM.
fn kafka_tool_command(class_path: &str, command: &str, bootstrap: &str) -> Command {
    let mut java = Command::new("java");
    java.args([
        "-Xmx128m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        class_path,
        "KafkaTool",
        command,
        bootstrap,
    ]);
    java
}

fn server_properties(data: &Path, options: &KafkaOptions) -> String {
    let KafkaOptions {
        port,
        controller_port,
        auto_create_topics,
        ..
    } = options;
    format!(
        "process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
log.dirs={data}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable={auto_create_topics}
num.partitions=3
message.max.bytes=1048588
",
        data = data.display()
    )
}

/// A KRaft cluster id: a random UUID in URL-safe base64 without padding,
/// as `kafka-storage random-uuid` prints.
fn cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// Broker logs: warnings and errors, plus the line that says it started
/// (the local cluster's Kafka image logs with the same file).
const LOG_CONFIG: &str = include_str!("../kafka/log4j2.yaml");
