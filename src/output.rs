//! Standard output of the command-line client.
//!
//! `println!` panics when the reader has gone (`govtrust audit list | head -1`). The client
//! writes through [`outln!`] and [`out!`] instead: a closed pipe ends the process quietly and
//! successfully, as the reader has what it wanted; any other write error ends it with a message
//! and a failure.

use std::fmt;
use std::io::{self, Write};

/// An outcome the command already told the user about: the process ends with this exit status
/// and prints nothing more (`cert verify` of a certificate that is not valid exits 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed(pub u8);

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Failed {}

/// Writes `args` to standard output, or ends the process if it cannot.
pub fn write(args: fmt::Arguments<'_>) {
    if let Err(error) = io::stdout().lock().write_fmt(args) {
        if error.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}

/// `print!` that ends the process quietly when standard output is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// `println!` that ends the process quietly when standard output is a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
