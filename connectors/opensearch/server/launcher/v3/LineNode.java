package io.vsplade.testnode;

import java.util.List;

import org.opensearch.Version;
import org.opensearch.env.Environment;
import org.opensearch.node.Node;
import org.opensearch.plugins.PluginInfo;

/** OpenSearch 3.x: Node's protected constructor takes a PluginInfo per classpath plugin and
 *  loads each class by name (the module classes were renamed *ModulePlugin in 3.0). */
final class LineNode extends Node {
    private static PluginInfo info(String name, String className) {
        return new PluginInfo(name, name + " module (classpath)", Version.CURRENT.toString(), Version.CURRENT,
            "21", className, List.of(), false);
    }

    private LineNode(Environment env) {
        super(env, List.of(
            info("transport-netty4", "org.opensearch.transport.Netty4ModulePlugin"),
            info("mapper-extras", "org.opensearch.index.mapper.MapperExtrasModulePlugin"),
            info("analysis-common", "org.opensearch.analysis.common.CommonAnalysisModulePlugin"),
            info("lang-painless", "org.opensearch.painless.PainlessModulePlugin")), true);
    }

    static Node create(Environment env) {
        return new LineNode(env);
    }
}
