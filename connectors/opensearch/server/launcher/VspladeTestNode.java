package io.vsplade.testnode;

import java.util.Collections;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;

/**
 * Starts one embedded OpenSearch node with the modules on the classpath (see LineNode, one per
 * line) and runs until the JVM is asked to stop (SIGTERM/SIGINT), then closes the node.
 * Arguments: node settings as key=value (path.home is required). No security manager and no
 * java agent: that is what the distribution's bootstrap adds, which a test node does without.
 * Started by vsplade_opensearch.testnode, which chooses the settings. With
 * -Dvsplade.exitOnStdinEof=true the JVM also stops when its stdin closes, so a node never
 * outlives the (possibly killed) process that started it.
 */
public final class VspladeTestNode {
    public static void main(String[] args) throws Exception {
        Settings.Builder b = Settings.builder();
        for (String a : args) {
            int eq = a.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("expected key=value, got " + a);
            b.put(a.substring(0, eq), a.substring(eq + 1));
        }
        Settings settings = b.build();
        String name = settings.get("node.name", "vsplade-node");
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), null, () -> name);
        Node node = LineNode.create(env);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "vsplade-node-shutdown"));
        if (Boolean.getBoolean("vsplade.exitOnStdinEof")) {
            Thread watch = new Thread(() -> {
                try {
                    while (System.in.read() >= 0) { }
                } catch (java.io.IOException e) {
                    // treated as closed
                }
                System.exit(0);
            }, "vsplade-stdin-watch");
            watch.setDaemon(true);
            watch.start();
        }
        node.start();
        System.out.println("vsplade-testnode: started " + name);
        System.out.flush();
        stopped.await();
    }
}
