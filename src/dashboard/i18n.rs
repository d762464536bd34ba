//! Every string the dashboard shows, in Indonesian and English.
//!
//! Templates read them as `t.<key>`; a key missing here renders as nothing, so the unit test
//! below checks that both languages have every key and no value is empty.

use std::collections::BTreeMap;

/// A dashboard language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Id,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    /// `id` or `en`; anything else is `None`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim() {
            "id" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Indonesian when the browser's most preferred language is Indonesian, else English.
    pub fn from_accept_language(header: &str) -> Lang {
        let best = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim().to_ascii_lowercase();
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
                    .unwrap_or(1.0);
                (!tag.is_empty()).then_some((tag, q))
            })
            .fold(None::<(String, f32)>, |best, (tag, q)| match best {
                Some((_, bq)) if bq >= q => best,
                _ => Some((tag, q)),
            });
        match best {
            Some((tag, _)) if tag == "id" || tag.starts_with("id-") || tag == "in" => Lang::Id,
            _ => Lang::En,
        }
    }

    /// The dictionary of this language, for templates.
    pub fn dict(self) -> BTreeMap<&'static str, &'static str> {
        STRINGS.iter().map(|(k, id, en)| (*k, if self == Lang::Id { *id } else { *en })).collect()
    }

    /// One string.
    pub fn t(self, key: &str) -> &'static str {
        STRINGS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, id, en)| if self == Lang::Id { *id } else { *en })
            .unwrap_or("")
    }
}

/// `(key, Indonesian, English)`.
const STRINGS: &[(&str, &str, &str)] = &[
    ("app_name", "WA Gateway", "WA Gateway"),
    ("skip", "Langsung ke isi", "Skip to content"),
    ("nav_home", "Beranda", "Home"),
    ("nav_devices", "Perangkat", "Devices"),
    ("nav_send", "Kirim pesan", "Send message"),
    ("nav_history", "Riwayat", "History"),
    ("nav_password", "Ganti kata sandi", "Change password"),
    ("nav_menu", "Menu", "Menu"),
    ("logout", "Keluar", "Log out"),
    ("language", "Bahasa", "Language"),
    ("switch_language", "English", "Bahasa Indonesia"),
    ("login_title", "Masuk ke dashboard", "Log in to the dashboard"),
    ("email", "Email", "Email"),
    ("password", "Kata sandi", "Password"),
    ("login_button", "Masuk", "Log in"),
    ("login_failed", "Email atau kata sandi salah.", "Wrong email or password."),
    (
        "login_throttled",
        "Terlalu banyak percobaan gagal. Coba lagi dalam 15 menit.",
        "Too many failed attempts. Try again in 15 minutes.",
    ),
    ("current_password", "Kata sandi saat ini", "Current password"),
    ("new_password", "Kata sandi baru (minimal 8 karakter)", "New password (at least 8 characters)"),
    ("save", "Simpan", "Save"),
    ("password_changed", "Kata sandi sudah diganti.", "Your password was changed."),
    ("password_wrong", "Kata sandi saat ini salah.", "The current password is wrong."),
    (
        "password_too_short",
        "Kata sandi baru minimal 8 karakter.",
        "The new password needs at least 8 characters.",
    ),
    ("welcome", "Selamat datang", "Welcome"),
    ("usage", "Pemakaian paket", "Package usage"),
    ("package", "Paket", "Package"),
    ("unlimited", "tanpa batas", "unlimited"),
    ("period", "Periode", "Period"),
    ("today", "Hari ini", "Today"),
    ("sent_today", "Terkirim hari ini", "Sent today"),
    ("received_today", "Diterima hari ini", "Received today"),
    ("recent_messages", "Pesan terbaru", "Recent messages"),
    ("no_messages", "Belum ada pesan.", "No messages yet."),
    ("no_devices", "Belum ada perangkat.", "No devices yet."),
    ("res_devices", "Perangkat", "Devices"),
    ("res_messages_per_month", "Pesan per bulan", "Messages per month"),
    ("res_auto_replies", "Balasan otomatis", "Auto replies"),
    ("res_scheduled_messages", "Pesan terjadwal", "Scheduled messages"),
    ("res_plugins", "Plugin", "Plugins"),
    ("res_webhook_endpoints", "Webhook", "Webhook endpoints"),
    ("device", "Perangkat", "Device"),
    ("devices_title", "Perangkat", "Devices"),
    ("add_device", "Tambah perangkat", "Add a device"),
    ("phone", "Nomor WhatsApp", "WhatsApp number"),
    ("phone_hint", "Contoh: 081234567890", "For example: 6281234567890"),
    ("name", "Nama", "Name"),
    ("name_optional", "Nama (opsional)", "Name (optional)"),
    ("add", "Tambah", "Add"),
    ("status", "Status", "Status"),
    ("open", "Buka", "Open"),
    ("st_disconnected", "terputus", "disconnected"),
    ("st_connecting", "menghubungkan", "connecting"),
    ("st_qr", "menunggu pindai QR", "waiting for QR scan"),
    ("st_connected", "terhubung", "connected"),
    ("st_logged_out", "keluar", "logged out"),
    ("st_queued", "antre", "queued"),
    ("st_sent", "terkirim", "sent"),
    ("st_delivered", "sampai", "delivered"),
    ("st_read", "dibaca", "read"),
    ("st_failed", "gagal", "failed"),
    ("st_received", "diterima", "received"),
    (
        "scan_help",
        "Buka WhatsApp di ponsel, pilih Perangkat tertaut, Tautkan perangkat, lalu pindai kode ini. Kode berganti sendiri.",
        "Open WhatsApp on the phone, choose Linked devices, Link a device, and scan this code. It rotates by itself.",
    ),
    ("qr_alt", "Kode QR untuk menautkan perangkat", "QR code to link the device"),
    (
        "connected_help",
        "Perangkat ini terhubung dan siap mengirim.",
        "This device is connected and ready to send.",
    ),
    ("refresh_qr", "Muat ulang kode QR", "Reload the QR code"),
    ("live", "Status diperbarui langsung.", "The status updates live."),
    ("send_title", "Kirim pesan", "Send a message"),
    ("to", "Nomor tujuan", "Recipient number"),
    ("to_hint", "Nomor telepon atau ID grup (…@g.us)", "A phone number or a group id (…@g.us)"),
    ("text", "Pesan", "Message"),
    ("send", "Kirim", "Send"),
    ("sent_ok", "Pesan dikirim.", "The message was sent."),
    ("history_title", "Riwayat pesan", "Message history"),
    ("direction", "Arah", "Direction"),
    ("dir_in", "masuk", "in"),
    ("dir_out", "keluar", "out"),
    ("all", "Semua", "All"),
    ("search", "Cari teks", "Search text"),
    ("filter", "Terapkan", "Apply"),
    ("export_csv", "Ekspor CSV", "Export CSV"),
    ("time", "Waktu", "Time"),
    ("chat", "Obrolan", "Chat"),
    ("from", "Dari", "From"),
    ("details", "Detail", "Details"),
    ("previous", "Sebelumnya", "Previous"),
    ("next", "Berikutnya", "Next"),
    ("showing", "Menampilkan", "Showing"),
    ("of", "dari", "of"),
    ("message_title", "Detail pesan", "Message details"),
    ("status_history", "Riwayat status", "Status history"),
    ("type", "Jenis", "Type"),
    ("source", "Sumber", "Source"),
    ("error", "Galat", "Error"),
    ("back", "Kembali", "Back"),
    ("not_found_title", "Tidak ditemukan", "Not found"),
    ("not_found_text", "Halaman atau data ini tidak ada.", "This page or item does not exist."),
    ("forbidden_title", "Ditolak", "Refused"),
    (
        "csrf_text",
        "Formulir kedaluwarsa atau tidak sah. Muat ulang halaman lalu coba lagi.",
        "The form expired or is not valid. Reload the page and try again.",
    ),
    (
        "nul_text",
        "Isian tidak boleh berisi karakter NUL (U+0000).",
        "A field must not contain the NUL character (U+0000).",
    ),
    (
        "rate_limited_text",
        "Terlalu banyak permintaan per menit untuk akun ini. Tunggu sebentar lalu muat ulang.",
        "Too many requests a minute for this account. Wait a moment, then reload.",
    ),
    ("error_title", "Terjadi kesalahan", "Something went wrong"),
    ("error_text", "Coba lagi sebentar lagi.", "Please try again in a moment."),
    ("timezone", "Zona waktu", "Time zone"),
    ("nav_auto_reply", "Balasan otomatis", "Auto-reply"),
    ("nav_scheduled", "Pesan terjadwal", "Scheduled"),
    ("auto_reply_title", "Balasan otomatis", "Auto-reply rules"),
    ("keyword", "Kata kunci", "Keyword"),
    ("match_mode", "Cara mencocokkan", "Match"),
    ("match_contains", "mengandung", "contains"),
    ("match_exact", "sama persis", "exact"),
    ("match_starts_with", "diawali", "starts with"),
    ("match_regex", "regex", "regex"),
    ("reply", "Balasan", "Reply"),
    (
        "reply_hint",
        "Bisa memakai {name}, {phone}, {message} dan {date}.",
        "You can use {name}, {phone}, {message} and {date}.",
    ),
    ("all_devices", "Semua perangkat", "All devices"),
    ("priority", "Prioritas (tertinggi dicoba dulu)", "Priority (highest is tried first)"),
    ("priority_short", "Prioritas", "Priority"),
    ("cooldown", "Jeda per obrolan (detik)", "Cooldown per chat (seconds)"),
    ("case_sensitive", "Bedakan huruf besar/kecil", "Case sensitive"),
    ("stop_chain", "Berhenti setelah membalas", "Stop after replying"),
    ("rule_groups", "Juga membalas di grup", "Also answer in groups"),
    ("plugin_groups", "Juga berjalan untuk pesan grup", "Also run for group messages"),
    ("enabled", "aktif", "enabled"),
    ("disabled", "nonaktif", "disabled"),
    ("enable", "Aktifkan", "Enable"),
    ("disable", "Nonaktifkan", "Disable"),
    ("edit", "Ubah", "Edit"),
    ("delete", "Hapus", "Delete"),
    ("actions", "Tindakan", "Actions"),
    ("confirm_delete", "Hapus ini?", "Delete this?"),
    ("no_rules", "Belum ada balasan otomatis.", "No auto-reply rules yet."),
    ("new_rule", "Balasan otomatis baru", "New auto-reply rule"),
    ("edit_rule", "Ubah balasan otomatis", "Edit auto-reply rule"),
    ("scheduled_title", "Pesan terjadwal", "Scheduled messages"),
    ("when", "Kapan", "When"),
    ("next_run", "berikutnya", "next"),
    ("sch_pending", "menunggu", "pending"),
    ("sch_sent", "terkirim", "sent"),
    ("sch_failed", "gagal", "failed"),
    ("sch_missed", "terlewat", "missed"),
    ("sch_cancelled", "dibatalkan", "cancelled"),
    ("cancel", "Batalkan", "Cancel"),
    ("confirm_cancel", "Batalkan pesan ini?", "Cancel this message?"),
    ("no_schedules", "Belum ada pesan terjadwal.", "No scheduled messages yet."),
    ("new_schedule", "Jadwalkan pesan", "Schedule a message"),
    ("repeat", "Pengulangan", "Repeat"),
    ("once", "Sekali", "Once"),
    ("recurring", "Berulang (cron)", "Recurring (cron)"),
    ("send_at", "Waktu kirim", "Send at"),
    ("cron", "Ekspresi cron", "Cron expression"),
    (
        "cron_hint",
        "Lima kolom: menit jam tanggal bulan hari, mis. 0 9 * * MON-FRI.",
        "Five fields: minute hour day month weekday, e.g. 0 9 * * MON-FRI.",
    ),
    ("schedule", "Jadwalkan", "Schedule"),
    ("device_actions", "Tindakan perangkat", "Device actions"),
    ("pair_code_button", "Minta kode tautan", "Get a pairing code"),
    (
        "pair_code_help",
        "Di WhatsApp pilih Perangkat tertaut, Tautkan dengan nomor telepon, lalu ketik kode ini:",
        "In WhatsApp choose Linked devices, Link with phone number, and type this code:",
    ),
    ("reset_session", "Atur ulang sesi", "Reset session"),
    ("logout_device", "Keluarkan dari WhatsApp", "Log out of WhatsApp"),
    ("delete_device", "Hapus perangkat", "Delete device"),
    (
        "confirm_delete_device",
        "Hapus perangkat ini beserta pesannya?",
        "Delete this device and its messages?",
    ),
    ("device_done", "Selesai.", "Done."),
    ("new_messages_live", "Pesan baru muncul langsung.", "New messages appear live."),
    ("nav_api_keys", "Kunci API", "API keys"),
    ("nav_activity", "Log aktivitas", "Activity log"),
    ("api_keys_title", "Kunci API", "API keys"),
    ("key_prefix", "Awalan", "Prefix"),
    ("created", "Dibuat", "Created"),
    ("last_used", "Terakhir dipakai", "Last used"),
    ("never", "belum pernah", "never"),
    ("revoke", "Cabut", "Revoke"),
    ("confirm_revoke", "Cabut kunci ini? Aplikasi yang memakainya berhenti bekerja.", "Revoke this key? Apps using it stop working."),
    ("new_key", "Kunci API baru", "New API key"),
    ("create_key", "Buat kunci", "Create key"),
    ("api_reference", "Referensi API: setiap endpoint, dan coba langsung", "API reference: every endpoint, and try it out"),
    ("key_scopes", "Izin", "Scopes"),
    ("key_devices", "Perangkat", "Devices"),
    ("only_devices", "hanya perangkat yang dicentang:", "only the devices ticked:"),
    ("scope_read", "read: riwayat, daftar, media", "read: history, lists, media"),
    ("scope_send", "send: mengirim dan aksi pada pesan", "send: sending and message actions"),
    ("scope_manage", "manage: perangkat, aturan, jadwal, webhook, plugin, kunci", "manage: devices, rules, schedules, webhooks, plugins, keys"),
    (
        "key_created_once",
        "Kunci baru dibuat. Salin sekarang: kunci ini hanya ditampilkan sekali.",
        "The new key was created. Copy it now: it is shown only this once.",
    ),
    ("no_keys", "Tidak ada kunci API aktif.", "No live API keys."),
    ("activity_title", "Log aktivitas", "Activity log"),
    ("actor", "Pelaku", "Actor"),
    ("action", "Tindakan", "Action"),
    ("target", "Sasaran", "Target"),
    ("ip", "Alamat IP", "IP address"),
    ("no_activity", "Belum ada aktivitas.", "No activity yet."),
    ("nav_webhooks", "Webhook", "Webhooks"),
    ("webhooks_title", "Webhook", "Webhooks"),
    ("webhook_events", "Peristiwa", "Events"),
    ("mode", "Mode", "Mode"),
    ("webhook_transform", "Transformasi", "Transformation"),
    ("webhook_no_transform", "Tanpa transformasi (JSON standar)", "None (the standard JSON)"),
    (
        "webhook_transform_hint",
        "Plugin transformasi mengubah setiap event menjadi permintaan yang diharapkan penerima (Slack, CRM, …); tanda tangan tetap ditambahkan. Hanya untuk mode notify.",
        "A transformation plugin turns each event into the request the receiver expects (Slack, a CRM, …); the signature is still added. Notify mode only.",
    ),
    ("mode_notify", "notify: kirim pemberitahuan", "notify: send notifications"),
    ("mode_reply", "reply: jawabannya dikirim ke obrolan", "reply: its answer goes to the chat"),
    ("description", "Keterangan (opsional)", "Description (optional)"),
    (
        "secret_once",
        "Rahasia penandatanganan ini hanya ditampilkan sekali. Salin sekarang.",
        "This signing secret is shown only once. Copy it now.",
    ),
    ("rotate_secret", "Ganti rahasia", "Rotate secret"),
    (
        "confirm_rotate",
        "Ganti rahasia? Penerima harus memakai rahasia baru.",
        "Rotate the secret? The receiver must use the new one.",
    ),
    ("failing_since", "gagal sejak", "failing since"),
    ("no_webhooks", "Belum ada webhook.", "No webhook endpoints yet."),
    ("new_webhook", "Webhook baru", "New webhook endpoint"),
    ("deliveries", "Pengiriman terakhir", "Latest deliveries"),
    ("event", "Peristiwa", "Event"),
    ("attempt", "Percobaan", "Attempt"),
    ("outcome", "Hasil", "Outcome"),
    ("retry", "Kirim ulang", "Retry"),
    ("no_deliveries", "Belum ada pengiriman.", "No deliveries yet."),
    ("nav_plugins", "Plugin", "Plugins"),
    ("plugins_title", "Plugin", "Plugins"),
    ("no_plugins", "Belum ada plugin.", "No plugins yet."),
    ("upload_plugin", "Unggah plugin", "Upload a plugin"),
    ("upload", "Unggah", "Upload"),
    ("plugin_file", "Komponen WebAssembly (.wasm)", "WebAssembly component (.wasm)"),
    ("plugin_order", "Urutan", "Order"),
    ("plugin_kind", "Jenis", "Kind"),
    ("plugin_kind_auto_reply", "Balasan otomatis (pesan masuk)", "Auto-reply (inbound messages)"),
    ("plugin_kind_transform", "Transformasi webhook", "Webhook transformation"),
    (
        "plugin_transform_hint",
        "Plugin ini membentuk event untuk endpoint webhook yang memilihnya; pilih di halaman",
        "This plugin shapes the events of the webhook endpoints that choose it; choose it on the page",
    ),
    ("plugin_transformed", "Permintaan yang dikirim", "The request sent"),
    ("plugin_order_hint", "Plugin berjalan dari urutan terkecil.", "Plugins run from the lowest order up."),
    ("plugin_devices", "Perangkat", "Devices"),
    (
        "plugin_devices_hint",
        "Tanpa centang: berjalan untuk semua perangkat.",
        "None ticked: it runs for every device.",
    ),
    ("plugin_config", "Konfigurasi (JSON)", "Configuration (JSON)"),
    ("plugin_allowed_hosts", "Host HTTP yang diizinkan", "Allowed HTTP hosts"),
    (
        "plugin_allowed_hosts_hint",
        "Satu per baris: nama (api.toko.id), alamat IP, atau *.toko.id untuk semua nama di bawahnya. Kosong: tidak ada.",
        "One per line: a name (api.toko.id), an IP address, or *.toko.id for every name under it. Empty: none.",
    ),
    ("plugin_log_http_bodies", "Simpan isi permintaan dan jawaban HTTP di log", "Keep HTTP request and response bodies in the log"),
    ("plugin_http_calls", "Permintaan HTTP", "HTTP requests"),
    ("plugin_http_over_cap", "permintaan lagi ditolak (melebihi batas)", "more requests refused (over the cap)"),
    ("plugin_settings", "Pengaturan", "Settings"),
    ("plugin_runs", "Jumlah jalan", "Runs"),
    ("last_outcome", "Hasil terakhir", "Last outcome"),
    ("failures", "Gagal beruntun", "Failures in a row"),
    ("never_run", "belum pernah jalan", "never run"),
    ("plugin_test", "Uji coba (tanpa mengirim)", "Dry run (nothing is sent)"),
    ("plugin_test_text", "Pesan contoh", "Sample message"),
    ("plugin_try", "Jalankan uji", "Run the test"),
    ("plugin_decision", "Keputusan", "Decision"),
    ("plugin_logs", "Log plugin", "Plugin logs"),
    ("plugin_latest_runs", "Jalan terakhir", "Latest runs"),
    ("no_runs", "Belum ada jalan.", "No runs yet."),
    ("none", "Tidak ada.", "None."),
    ("send_media_title", "Kirim gambar atau dokumen", "Send an image or document"),
    ("media_file", "Berkas (gambar atau dokumen)", "File (image or document)"),
    ("caption", "Keterangan (opsional)", "Caption (optional)"),
    ("admin_login_title", "Masuk operator", "Operator login"),
    ("admin_token", "Token admin", "Admin token"),
    ("admin_login_failed", "Token admin salah.", "The admin token is wrong."),
    ("admin_title", "Operator: penyewa", "Operator: tenants"),
    ("admin_tenants", "Penyewa dan pemakaian bulan ini", "Tenants and this month's usage"),
    ("admin_package", "Paket", "Package"),
    ("admin_usage", "Pemakaian", "Usage"),
    ("admin_suspend", "Tangguhkan", "Suspend"),
    ("admin_activate", "Aktifkan lagi", "Reactivate"),
    ("admin_new_tenant", "Penyewa baru", "New tenant"),
    (
        "admin_key_once",
        "Kunci API pertama ini hanya ditampilkan sekali.",
        "This first API key is shown only once.",
    ),
    ("tenant_active", "aktif", "active"),
    ("tenant_suspended", "ditangguhkan", "suspended"),
    ("admin_overrides", "Batas khusus", "Limit overrides"),
    (
        "admin_overrides_hint",
        "Kosong: nilai paket. Angka: batas baru. unlimited: tanpa batas.",
        "Empty: the package's value. A number: a new limit. unlimited: no limit.",
    ),
    ("admin_menu", "Menu operator", "Operator menu"),
    ("admin_nav_tenants", "Penyewa", "Tenants"),
    ("admin_nav_cluster", "Klaster", "Cluster"),
    ("cluster_title", "Operator: klaster", "Operator: cluster"),
    ("cluster_times_utc", "Semua waktu dalam UTC.", "All times are in UTC."),
    ("cluster_nodes", "Proses gateway yang hidup", "Live gateway processes"),
    ("cluster_no_nodes", "Tidak ada proses yang hidup.", "No live process."),
    ("cluster_node_id", "ID", "ID"),
    ("cluster_version", "Versi", "Version"),
    ("cluster_started", "Mulai", "Started"),
    ("cluster_renewed", "Terakhir diperbarui", "Last renewed"),
    ("cluster_expires", "Kedaluwarsa", "Expires"),
    ("cluster_draining", "Sedang berhenti", "Draining"),
    ("cluster_devices_held", "Perangkat dipegang", "Devices held"),
    ("cluster_this", "proses ini", "this process"),
    ("cluster_yes", "ya", "yes"),
    ("cluster_no", "tidak", "no"),
    ("cluster_counters", "Penghitung proses ini", "This process's counters"),
    ("cluster_counters_hint", "Sejak proses ini mulai, sebagai node", "Since this process started, as node"),
    ("cluster_stat_leases_taken", "Lease diambil", "Leases taken"),
    ("cluster_stat_leases_given_up", "Lease dilepas", "Leases given up"),
    ("cluster_stat_fenced_writes", "Tulisan ditolak (fencing)", "Fenced writes"),
    ("cluster_stat_resent_after_takeover", "Dikirim ulang setelah pindah proses", "Re-sent after takeover"),
    (
        "cluster_stat_stopped_unrenewed",
        "Sesi dihentikan karena gagal memperbarui",
        "Sessions stopped, not renewed in time",
    ),
    ("cluster_stat_rejoined", "Bergabung lagi", "Rejoined"),
    ("cluster_stat_commands_run", "Perintah dijalankan untuk proses lain", "Commands run for others"),
    ("cluster_stat_commands_sent", "Perintah dikirim ke proses lain", "Commands sent to others"),
    ("cluster_leases", "Lease perangkat", "Device leases"),
    ("cluster_no_leases", "Belum ada lease perangkat.", "No device leases yet."),
    ("cluster_no_leases_here", "Tidak ada lease di halaman ini.", "No leases on this page."),
    ("cluster_device_id", "ID perangkat", "Device ID"),
    ("cluster_holder", "Pemegang", "Holder"),
    ("cluster_holder_none", "tidak ada", "none"),
    ("cluster_epoch", "Epoch", "Epoch"),
    ("cluster_acquired", "Diambil", "Acquired"),
    ("cluster_live", "Hidup", "Live"),
    ("st_reaction", "reaksi", "reaction"),
    ("st_edited", "diedit", "edited"),
    ("st_revoked", "dihapus", "deleted"),
    ("st_poll_vote", "suara polling", "poll vote"),
    ("st_read_mark", "ditandai dibaca", "marked read"),
    ("kind_text", "Teks", "Text"),
    ("kind_image", "🖼️ Gambar", "🖼️ Image"),
    ("kind_video", "🎬 Video", "🎬 Video"),
    ("kind_audio", "🎵 Audio", "🎵 Audio"),
    ("kind_voice", "🎤 Pesan suara", "🎤 Voice note"),
    ("kind_document", "📄 Dokumen", "📄 Document"),
    ("kind_sticker", "🙂 Stiker", "🙂 Sticker"),
    ("kind_location", "📍 Lokasi", "📍 Location"),
    ("kind_contact", "👤 Kontak", "👤 Contact"),
    ("kind_poll", "📊 Polling", "📊 Poll"),
    ("kind_unsupported", "❔ Tidak didukung", "❔ Unsupported"),
    ("unsupported_kind", "jenis di WhatsApp", "WhatsApp's kind"),
    ("mark_edited", "diedit", "edited"),
    ("mark_revoked", "dihapus", "deleted"),
    ("mark_forwarded", "diteruskan", "forwarded"),
    ("edited_at", "Diedit", "Edited"),
    ("previous_texts", "Teks sebelumnya", "Earlier texts"),
    ("revoked_at", "Dihapus untuk semua", "Deleted for everyone"),
    ("read_at", "Ditandai dibaca", "Marked read"),
    ("reply_to", "Membalas", "Reply to"),
    ("quoted_no_text", "(pesan tanpa teks)", "(a message without text)"),
    ("you", "Anda", "you"),
    ("mentions", "Menyebut", "Mentions"),
    ("reactions", "Reaksi", "Reactions"),
    ("reaction_removed", "menarik reaksinya", "took the reaction back"),
    ("media", "Media", "Media"),
    ("media_download", "Unduh", "Download"),
    ("media_pending", "sedang diunduh…", "downloading…"),
    ("media_failed", "gagal diunduh", "could not be downloaded"),
    ("media_expired", "dihapus setelah masa simpan", "deleted after the retention period"),
    ("media_skipped", "tidak disimpan (unduhan dimatikan)", "not kept (downloads are off)"),
    ("location", "Lokasi", "Location"),
    ("open_map", "Buka di peta", "Open in a map"),
    ("contacts", "Kontak", "Contacts"),
    ("poll", "Polling", "Poll"),
    ("poll_multiple", "boleh pilih lebih dari satu", "more than one choice allowed"),
    ("poll_single", "pilih satu", "one choice"),
    ("vote_one", "suara", "vote"),
    ("votes", "suara", "votes"),
    ("vote_cleared", "membatalkan pilihannya", "withdrew the vote"),
    ("send_location_title", "Kirim lokasi", "Send a location"),
    ("latitude", "Lintang (latitude)", "Latitude"),
    ("longitude", "Bujur (longitude)", "Longitude"),
    (
        "coordinates_hint",
        "Derajat desimal, mis. -6.2 dan 106.816666.",
        "Decimal degrees, e.g. -6.2 and 106.816666.",
    ),
    ("place_name", "Nama tempat (opsional)", "Place name (optional)"),
    ("place_address", "Alamat (opsional)", "Address (optional)"),
    ("send_contact_title", "Kirim kontak", "Send a contact"),
    ("contact_name", "Nama kontak", "Contact name"),
    ("contact_phone", "Nomor kontak", "Contact phone number"),
    ("err_device_not_connected", "Perangkat belum terhubung.", "The device is not connected."),
    ("err_limit_exceeded", "Batas paket Anda sudah tercapai.", "Your package limit is reached."),
    ("err_validation_failed", "Periksa isian", "Check the field"),
    ("err_not_found", "Tidak ditemukan.", "Not found."),
    ("err_conflict", "Sudah ada.", "It already exists."),
    ("err_unavailable", "Layanan belum siap; coba lagi.", "Not available yet; try again."),
    ("err_other", "Permintaan gagal.", "The request failed."),
    ("nav_chats", "Percakapan", "Chats"),
    ("chats_title", "Percakapan", "Chats"),
    ("chats_search", "Cari nama atau nomor", "Search a name or number"),
    ("chats_none", "Belum ada percakapan.", "No conversations yet."),
    ("chats_unread", "belum dibaca", "unread"),
    ("chats_show", "Tampilkan", "Show"),
    ("chats_show_main", "Obrolan", "Chats"),
    ("chats_show_unread", "Belum dibaca", "Unread"),
    ("chats_show_pinned", "Disematkan", "Pinned"),
    ("chats_show_muted", "Dibisukan", "Muted"),
    ("chats_show_archived", "Diarsipkan", "Archived"),
    ("chats_pinned", "Disematkan di ponsel", "Pinned on the phone"),
    ("chats_muted", "Dibisukan di ponsel", "Muted on the phone"),
    ("chats_archived", "Diarsipkan di ponsel", "Archived on the phone"),
    ("chats_pick", "Pilih percakapan dari daftar.", "Pick a conversation from the list."),
    ("chats_back", "Kembali ke daftar", "Back to the list"),
    ("chats_reply", "Balas", "Reply"),
    ("chats_replying_to", "Membalas:", "Replying to:"),
    ("chats_cancel_reply", "Batal membalas", "Cancel the reply"),
    ("chats_type_message", "Tulis pesan", "Type a message"),
    ("chats_group", "Grup", "Group"),
    ("chats_members", "Anggota grup", "Group members"),
    ("chats_messages", "Pesan", "Messages"),
    (
        "chats_latest",
        "Menampilkan 50 pesan terakhir; semua pesan ada di Riwayat.",
        "The last 50 messages are shown; all of them are in History.",
    ),
    ("groups_title", "Grup", "Groups"),
    ("groups_show", "Tampilkan", "Show"),
    ("groups_none", "Perangkat ini belum ada di grup mana pun.", "This device is in no group."),
    ("groups_subject", "Nama grup", "Subject"),
    ("groups_size", "Anggota", "Members"),
    ("groups_admin", "Perangkat admin?", "Device is admin"),
    ("groups_admin_yes", "Admin", "Admin"),
    ("groups_admin_no", "Bukan admin", "Not admin"),
    ("groups_id", "ID grup", "Group id"),
    ("groups_description", "Deskripsi", "Description"),
    ("groups_members", "Anggota", "Members"),
    ("groups_invite", "Tautan undangan", "Invite link"),
    (
        "groups_invite_admin_only",
        "Hanya admin grup yang bisa melihat tautan undangan.",
        "Only group admins can see the invite link.",
    ),
    (
        "groups_invite_unavailable",
        "Tautan undangan tidak tersedia saat ini.",
        "The invite link is not available right now.",
    ),
    (
        "groups_cached",
        "Perangkat tidak terhubung; data tersimpan dari",
        "The device is not connected; saved data from",
    ),
    ("groups_open_chat", "Buka percakapan", "Open the conversation"),
    ("role_member", "anggota", "member"),
    ("role_admin", "admin", "admin"),
    ("role_superadmin", "pembuat grup", "creator"),
    ("nav_contacts", "Kontak", "Contacts"),
    ("contacts_title", "Kontak", "Contacts"),
    ("contacts_search", "Cari nama atau nomor", "Search a name or number"),
    ("contacts_none", "Belum ada kontak.", "No contacts yet."),
    ("contacts_number", "Nomor", "Number"),
    ("contacts_number_unknown", "belum diketahui (hanya LID)", "not known yet (only the LID)"),
    ("contacts_last_chat", "Percakapan terakhir", "Last chat"),
    ("contacts_about", "Info", "About"),
    ("contacts_picture", "Foto profil", "Profile picture"),
    ("contacts_picture_open", "Lihat foto", "Open the picture"),
    ("contacts_no_picture", "Tidak ada foto yang bisa dilihat", "No picture to see"),
    ("contacts_business", "Akun bisnis", "Business account"),
    ("contacts_business_yes", "Ya", "Yes"),
    ("contacts_business_no", "Bukan", "No"),
    ("contacts_verified_name", "Nama bisnis terverifikasi", "Verified business name"),
    ("contacts_blocked", "Diblokir", "Blocked"),
    ("contacts_blocked_yes", "Diblokir", "Blocked"),
    ("contacts_blocked_no", "Tidak diblokir", "Not blocked"),
    ("contacts_block", "Blokir", "Block"),
    ("contacts_unblock", "Buka blokir", "Unblock"),
    (
        "contacts_block_confirm",
        "Blokir kontak ini? WhatsApp tidak lagi mengantarkan pesannya ke perangkat.",
        "Block this contact? WhatsApp stops delivering its messages to the device.",
    ),
    ("contacts_open_chat", "Buka percakapan", "Open the chat"),
    ("contacts_fetched", "Profil dibaca dari WhatsApp", "Profile read from WhatsApp"),
    ("contacts_never_fetched", "belum pernah", "never"),
    ("contacts_refresh", "Baca ulang profil", "Read the profile again"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_exists_in_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for (key, id, en) in STRINGS {
            assert!(seen.insert(key), "duplicate key {key}");
            assert!(!id.is_empty() && !en.is_empty(), "{key}");
        }
        assert_eq!(Lang::Id.dict().len(), STRINGS.len());
    }

    /// Kinds and status-history changes are shown by key; a missing key would be an empty
    /// label or badge.
    #[test]
    fn every_message_kind_and_change_has_a_label() {
        use crate::messages::view::{
            CHANGE_EDITED, CHANGE_POLL_VOTE, CHANGE_REACTION, CHANGE_READ_MARK, CHANGE_REVOKED,
        };
        for kind in crate::dashboard::pages::KINDS {
            assert!(!Lang::En.t(&format!("kind_{kind}")).is_empty(), "{kind}");
        }
        for change in [CHANGE_REACTION, CHANGE_EDITED, CHANGE_REVOKED, CHANGE_POLL_VOTE, CHANGE_READ_MARK] {
            assert!(!Lang::Id.t(&format!("st_{change}")).is_empty(), "{change}");
        }
    }

    /// The cluster page labels this process's counters by key.
    #[test]
    fn every_cluster_counter_has_a_label() {
        for key in crate::dashboard::admin::COUNTERS {
            assert!(!Lang::Id.t(&format!("cluster_stat_{key}")).is_empty(), "{key}");
            assert!(!Lang::En.t(&format!("cluster_stat_{key}")).is_empty(), "{key}");
        }
    }

    #[test]
    fn indonesian_only_when_the_browser_prefers_it() {
        assert_eq!(Lang::from_accept_language("id-ID,id;q=0.9,en;q=0.8"), Lang::Id);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,id;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0.5, id;q=0.9"), Lang::Id);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language("fr"), Lang::En);
    }
}
