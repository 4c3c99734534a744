// Which plugin directories and files the host trusts (loading a plugin runs its code as this user),
// and the per-user plugin directory where `plugins install` writes.
#pragma once

#include <optional>
#include <string>

namespace speculators {

// Why a directory (or a plugin file) must not be trusted: it is writable by others, writable by
// a group other than the owner's private group, or owned by someone other than `user_uid` or
// root. Loading a plugin runs its code, so anyone who can write there could run code as this
// user. `group_private`: the file's group is its owner's user-private group (same name as the
// owner, no other members), as umask 002 systems create them; then only the owner can write.
std::optional<std::string> unsafe_permissions_reason(const std::string& path, unsigned mode, unsigned owner_uid,
                                                     unsigned user_uid, bool group_private = false);
// The same for a path on disk, with this process's effective uid and the group database.
// A path that cannot be stat()ed gives a reason too.
std::optional<std::string> unsafe_path_reason(const std::string& path);
// For a plugin file reached through a symbolic link (the file itself, or a directory on its
// path): the directory the link finally resolves to must pass unsafe_path_reason too, since whoever
// can write there can replace the file. nullopt when `path` is no link or its target's directory
// is safe.
std::optional<std::string> unsafe_link_target_reason(const std::string& path);

// The per-user plugin directory: $XDG_DATA_HOME/speculators/plugins, or
// $HOME/.local/share/speculators/plugins; "" when neither variable is set. `plugins install`
// writes there by default and the search path includes it (after SPECULATORS_PLUGIN_PATH).
std::string user_plugin_dir();

}  // namespace speculators
